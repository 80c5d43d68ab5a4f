"""The fan-out's part of RESULTS.md: what was measured, and its two plots (speed; memory in bursts)."""

from __future__ import annotations

from pathlib import Path

from bench.metrics import Metric, is_fanout_memory
from bench.report_plots import bar_plot


def fanout_measured(params: dict, *, own_process: bool) -> str:
    """The fan-out's paragraph; ``own_process``: it ran on a fresh server process, apart from the other scenarios."""
    if "fanout_receivers" not in params:
        return "- **fan-out (broadcast)**: not measured in this run."
    counts = " and ".join(f"{n:,}" for n in params["fanout_receivers"])
    bursts = ", ".join(
        f"{k} for {n:,}"
        for n, k in zip(params["fanout_receivers"], params["fanout_burst"], strict=True)
    )
    most = f"{max(params.get('memory_steps') or [10_000]):,}"
    return (
        f"- **fan-out (broadcast)**: one sender and N receivers ({counts}) on each server's `/fanout`, which sends every "
        "message it receives, unchanged, to every other open `/fanout` connection, written the library's documented way: "
        "rawws frames it once and queues the same bytes on every session (`send_frame`, the chat's path, `rawws.chat.hub`); "
        "rawws-lib (`rawws.serve` alone, coroutine handlers) calls `rawws.broadcast()`, which does the same; "
        "websockets calls `broadcast()`; picows calls `transport.send` per receiver (its broadcast example); aiohttp "
        "awaits `send_bytes` per receiver (its chat example); the floor writes the length-prefixed bytes to each "
        "receiver's transport (a connection joins its group by sending `FANO` first). All N + 1 connections are opened and "
        "upgraded, the server is left to settle, and a validation pass of 2 bursts is checked on every receiver. "
        f"*Burst*: K {params['fanout_size']} B messages back to back (K = {bursts}), wait until every receiver has all K, "
        f"again for {params['fanout_duration_s']} s. *Lock-step*: one message, wait until all N receivers have it, the "
        f"next, for {params['fanout_duration_s']} s. Every copy is compared byte for byte, in order; the sender must get "
        "nothing back. Deliveries/s = messages × N ÷ wall time of the phase; server CPU per delivery = utime+stime of "
        "the server (`/proc/<pid>/stat`) over the phase ÷ deliveries. Server memory in bursts: once the connections are "
        "open and the server idle, its `VmRSS` is read and its peak (`VmHWM`) reset to it (`5` to `/proc/<pid>/clear_refs`); "
        "after the validation bursts and the burst phase, `VmHWM` is the peak RSS while bursting, and peak − the RSS before "
        "is what the bursts added (the peak includes the process's idle footprint: imports, the N open connections). "
        + (
            "The fan-out runs on a fresh server process of its own, started once the process of the other scenarios "
            f"has stopped, so that idle footprint carries nothing they left behind (in the memory rounds, {most} "
            "connections) and the peak is comparable across servers and rounds; within that process the run to "
            f"{params['fanout_receivers'][0]:,} receivers comes first. "
            if own_process
            else "The fan-out ran in the same server process as the other scenarios, after them: in the rounds with the "
            f"memory scenario its idle footprint still held what {most} connections left behind. "
        )
        + "(`python -m experiments.fanout` measures rawws's authenticated "
        "chat broadcast on `/ws` on its own: `experiments/fanout/FANOUT.md`.)"
    )


def fanout_plots(
    plots_dir: Path, results: list[dict], metrics: list[Metric]
) -> list[tuple[str, str, list[str]]]:
    """Draw the fan-out's plots; (file, title, metric keys) of each drawn, for the report to link."""
    plots: list[tuple[str, str, list[str]]] = []
    fan = [m for m in metrics if m.scenario == "fanout" and not is_fanout_memory(m)]
    fan_memory = [m for m in metrics if is_fanout_memory(m)]
    if fan:
        # top row deliveries/s (log scale: the spread is wide), bottom row server CPU per delivery
        fan = [m for m in fan if m.higher_is_better] + [
            m for m in fan if not m.higher_is_better
        ]
        log = frozenset(m.key for m in fan if m.higher_is_better)
        bar_plot(
            plots_dir / "fanout.png",
            results,
            fan,
            "fan-out: one sender, N receivers",
            cols=len(fan) // 2,
            log=log,
        )
        plots.append(("fanout.png", "fan-out", [m.key for m in fan]))
    if fan_memory:
        bar_plot(
            plots_dir / "fanout_memory.png",
            results,
            fan_memory,
            "fan-out bursts: server memory",
            cols=len(fan_memory) // 2,
        )
        plots.append(
            ("fanout_memory.png", "fan-out memory", [m.key for m in fan_memory])
        )
    return plots
