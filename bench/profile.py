"""Where rawws spends its time under the echo load: py-spy on the server process.

    python -m bench.profile [--duration 10] [--loop asyncio|uvloop]

For 64 B echo, 16 KiB echo and handshakes (connect + upgrade + close), starts rawws's bench server (`bench/servers/rawws_server.py`: `rawws serve --echo --no-compression` plus /fanout),
drives it with the load client (the same scenario as `python -m bench`, made
longer), and samples the server with ``py-spy record`` (100 Hz, idle frames
dropped) for ``--duration`` seconds in the middle of the load. Writes
``bench/PROFILE.md`` (top functions by own time and by inclusive time, and
the hottest stacks) and, under ``bench/profiles/``, the collapsed stacks per size
(input for flamegraph.pl or speedscope). py-spy must be allowed to ptrace the server
(root, or ``kernel.yama.ptrace_scope`` 0).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.harness import BENCH_DIR, PROFILES, REPO, raise_nofile
from bench.servers.registry import ServerSpec
from testkit import free_port, stop, wait_for_port

PROFILE_DIR = BENCH_DIR / "profiles"


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(found).exists():
        raise SystemExit(
            "py-spy not found: pip install py-spy (it is in the bench extra)"
        )
    return found


def function_of(frame: str) -> str:
    """``process (wsproto/frame_protocol.py:36)`` → ``process (wsproto/frame_protocol.py)``."""
    head, sep, tail = frame.rpartition(":")
    return f"{head})" if sep and tail.rstrip(")").isdigit() else frame


def file_of(frame: str) -> str:
    inner = frame.rpartition("(")[2].rstrip(")")
    return short(f"x ({inner})")[3:-1].rpartition(":")[0] or inner


def parse_collapsed(path: Path) -> dict:
    """Own time and inclusive time per function, own time per file, whole stacks; from ``--format raw``."""
    own: collections.Counter = collections.Counter()
    incl: collections.Counter = collections.Counter()
    files: collections.Counter = collections.Counter()
    stacks: collections.Counter = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        own[function_of(frames[-1])] += n
        files[file_of(frames[-1])] += n
        for f in {function_of(f) for f in frames}:
            incl[f] += n
        stacks[";".join(frames[-4:])] += n
    return {"own": own, "incl": incl, "files": files, "stacks": stacks, "total": total}


def short(frame: str) -> str:
    """``send (rawws/server/connection.py:123)`` → keep the function and file, drop the site-packages prefix."""
    frame = frame.replace(str(REPO) + "/", "")
    for marker in ("site-packages/", "lib/python3.11/"):
        if marker in frame:
            head, _, tail = frame.partition("(")
            tail = tail.split(marker, 1)[-1]
            frame = f"{head}({tail}"
    return frame


def run(size_name: str, loop: str, duration: float, work: Path) -> dict:
    params = dict(PROFILES["default"])
    params.pop("rounds")
    params["warmup_s"] = 1.0
    params["duration_s"] = duration + 4.0
    params["hs_sequential"] = 100
    params["hs_concurrent"] = int(
        1500 * (duration + 4.0)
    )  # bounded; at ~1,000/s it outlasts the sampling
    spec = ServerSpec("rawws", loop)
    port = free_port()
    env = dict(
        os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")
    )
    server = subprocess.Popen(
        spec.command(port, str(work / f"data-{size_name}")), cwd=REPO, env=env
    )
    try:
        wait_for_port(port, process=server)
        client = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.client",
                "--port",
                str(port),
                "--server-pid",
                str(server.pid),
                "--scenarios",
                size_name,
                "--params",
                json.dumps(params),
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(2.5)  # connections open, validation done, warm-up under way
        PROFILE_DIR.mkdir(exist_ok=True)
        raw = PROFILE_DIR / f"rawws-{loop}-{size_name}.collapsed.txt"
        subprocess.run(
            [
                py_spy(),
                "record",
                "-p",
                str(server.pid),
                "-d",
                str(int(duration)),
                "-r",
                "100",
                "-f",
                "raw",
                "-o",
                str(raw),
            ],
            check=True,
            capture_output=True,
        )
        assert client.stdout is not None
        result = json.loads(client.stdout.readline())
        client.wait(timeout=60)
    finally:
        stop(server)
    return {
        "size": size_name,
        "loop": loop,
        "load": result,
        "raw": raw,
        **parse_collapsed(raw),
    }


def render(profiles: list[dict], command: str) -> str:
    lines = [
        "<!-- Generated by `python -m bench.profile`; do not edit by hand (re-run instead). -->",
        "",
        "# Where rawws spends its time under echo load",
        "",
        f"Command: `{command}` — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. "
        "`py-spy record` at 100 Hz on the rawws server process (`rawws serve --echo --no-compression` via `bench/servers/rawws_server.py`) while the load client "
        "runs the benchmark's echo scenario (idle samples — the loop waiting in epoll — are dropped by py-spy, "
        "so percentages are of busy time). The machine is shared, and py-spy pauses the process for each "
        "sample, so the load figures here are lower than in RESULTS.md; the shares are what matters. "
        "Time inside a system call (the `send` under `transport.write`) counts as that Python frame's own time.",
        "",
    ]
    for p in profiles:
        load = p["load"]
        if p["size"] == "handshakes":
            title = (
                f"## handshakes ({p['loop']}): {load.get('concurrent_per_s', 0):,.0f}/s with {load.get('concurrency')} "
                f"concurrent, {load.get('server_cpu_us_per_handshake_conc') or 0:.0f} µs server CPU per handshake, "
                f"{p['total']:,} samples"
            )
        else:
            title = (
                f"## {p['size']} ({p['loop']}): {load.get('msgs_per_s', 0):,.0f} msg/s, "
                f"{load.get('server_cpu_us_per_msg') or 0:.1f} µs server CPU per message, {p['total']:,} samples"
            )
        lines += [
            title,
            "",
            "| own time | function (file) |",
            "|---:|---|",
        ]
        for frame, n in p["own"].most_common(15):
            lines.append(f"| {n / p['total']:.1%} | `{short(frame)}` |")
        lines += ["", "| own time | file |", "|---:|---|"]
        for name, n in p["files"].most_common(10):
            lines.append(f"| {n / p['total']:.1%} | `{name}` |")
        lines += ["", "| inclusive | function (file) |", "|---:|---|"]
        skip = (
            "<module>",
            "_run_code",
            "_run_module_as_main",
            "run (asyncio",
            "Runner.run",
            "run_forever",
            "run_until_complete",
            "main (rawws/cli",
        )
        for frame, n in [
            (f, n)
            for f, n in p["incl"].most_common(40)
            if not short(f).startswith(skip)
        ][:20]:
            lines.append(f"| {n / p['total']:.1%} | `{short(frame)}` |")
        lines += ["", "Hottest stack tails (last 4 frames):", ""]
        for stack, n in p["stacks"].most_common(8):
            lines.append(
                f"- {n / p['total']:.1%}: "
                + " → ".join(f"`{short(f)}`" for f in stack.split(";"))
            )
        lines += [
            "",
            f"Collapsed stacks: `{os.path.relpath(p['raw'], BENCH_DIR)}` (flamegraph.pl / speedscope input).",
            "",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--duration", type=float, default=10.0, help="seconds of sampling per size"
    )
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "PROFILE.md")
    args = parser.parse_args(argv)
    raise_nofile()
    command = (
        "python -m bench.profile"
        + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip()
    )
    with tempfile.TemporaryDirectory(prefix="rawws-profile-") as tmp:
        profiles = [
            run(name, args.loop, args.duration, Path(tmp))
            for name in ("echo64", "echo16k", "handshakes")
        ]
    args.out.write_text(render(profiles, command))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
