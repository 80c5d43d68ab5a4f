"""One place for the runner's own console lines, so they stand out from tool output."""


def say(message: str) -> None:
    """Print a runner message, flushed so it interleaves correctly with child output in CI logs."""
    print(f"[conformance] {message}", flush=True)
