"""`python -m bench`: run every echo server against the one load client, round by round, and report.

Each round starts every server once, in a rotated order (round r starts at
the r-th server, so no server always runs first or last), as its own process
on a fresh port; the load client (``bench/client/``) runs in its own process
against it and prints one JSON line per scenario; then the server is stopped
with SIGTERM. The fan-out scenario then gets a second, fresh process of the
same server, started the same way once the first has stopped: its peak RSS in
bursts would otherwise carry what the earlier scenarios left in the process
(the memory scenario's 10,000 connections above all). Medians over rounds and per-round ratios go to
``bench/RESULTS.md``, the plots to ``bench/plots/``, the raw numbers to
``bench/results.json`` (not committed: every run writes it, and
``--report-only`` re-renders the report from it). Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.servers.registry import ALL_SERVERS, ServerSpec
from testkit import free_port, start, stop, wait_for_port

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent

PROFILES: dict[str, dict] = {
    # Sized for a 2-core machine: the whole `python -m bench` (12 servers × 3 rounds) is
    # meant to finish within ~15 minutes.
    "default": {
        "rounds": 3,
        "memory_rounds": 2,  # memory varies < 1% between rounds and opening 10,000 connections is the slowest part
        "memory_steps": [2000, 10000],
        "memory_concurrency": 100,
        "echo64_connections": 50,
        "echo64_window": 16,
        "echo64_max_messages": 2_000_000,
        "echo16k_connections": 8,
        "echo16k_window": 4,
        "echo16k_max_messages": 200_000,
        "warmup_s": 0.3,
        "duration_s": 2.0,
        "rtt_warmup": 200,
        "rtt_count": 2000,
        "hs_sequential": 1000,  # enough that CPU per handshake is read to ~10 µs (/proc counts 10 ms ticks)
        "hs_concurrent": 3000,
        "hs_concurrency": 50,
        # fan-out: one sender, N receivers on /fanout; a burst of K messages per N (same order)
        "fanout_receivers": [100, 1000],
        "fanout_burst": [50, 20],
        "fanout_size": 64,
        "fanout_duration_s": 0.6,  # each of the burst and lock-step phases
        "fanout_max_deliveries": 2_000_000,
    },
    # A smoke test: tiny counts, one round; the numbers mean nothing.
    "quick": {
        "rounds": 1,
        "memory_rounds": 1,
        "memory_steps": [20, 100],
        "memory_concurrency": 20,
        "echo64_connections": 4,
        "echo64_window": 8,
        "echo64_max_messages": 20_000,
        "echo16k_connections": 2,
        "echo16k_window": 2,
        "echo16k_max_messages": 2_000,
        "warmup_s": 0.05,
        "duration_s": 0.25,
        "rtt_warmup": 10,
        "rtt_count": 100,
        "hs_sequential": 20,
        "hs_concurrent": 50,
        "hs_concurrency": 10,
        "fanout_receivers": [10, 50],
        "fanout_burst": [5, 5],
        "fanout_size": 64,
        "fanout_duration_s": 0.1,
        "fanout_max_deliveries": 20_000,
    },
}


def raise_nofile() -> tuple[int, int]:
    """Children inherit this: 10,000 idle connections need more than the usual 1,024 descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


class Progress:
    def __init__(self, total: int, stream=sys.stderr) -> None:
        self.total = total
        self.done = 0
        self.t0 = time.monotonic()
        self.stream = stream

    def line(self, text: str) -> None:
        elapsed = time.monotonic() - self.t0
        eta = ""
        if self.done:
            left = elapsed / self.done * (self.total - self.done)
            eta = f" eta {int(left // 60)}:{int(left % 60):02d}"
        print(
            f"[{self.done}/{self.total} {int(elapsed // 60)}:{int(elapsed % 60):02d}{eta}] {text}",
            file=self.stream,
            flush=True,
        )


def summarise(result: dict) -> str:
    if not result.get("ok"):
        return f"FAILED {result.get('error')}"
    s = result["scenario"]
    if s == "memory":
        return "  ".join(
            f"{st['connections']}: {st['per_connection_kib']:.1f} KiB/conn"
            for st in result["steps"]
        )
    if s == "echo64":
        return (
            f"{result['msgs_per_s']:,.0f} msg/s  {result['server_cpu_us_per_msg']:.1f} µs cpu/msg  "
            f"server {result['server_cpu_util']:.0%} client {result['client_cpu_util']:.0%} "
            f"others {result['other_cpu_cores']:.2f} cores"
        )
    if s == "echo16k":
        return (
            f"{result['MB_per_s']:,.1f} MB/s  {result['server_cpu_us_per_msg']:.1f} µs cpu/msg  "
            f"server {result['server_cpu_util']:.0%} others {result['other_cpu_cores']:.2f} cores"
        )
    if s == "rtt":
        return f"p50 {result['p50_us']:.0f} µs  p99 {result['p99_us']:.0f} µs"
    if s == "fanout":
        b, lock = result["burst"], result["lockstep"]
        return (
            f"N={result['receivers']:,}: burst {b['deliveries_per_s']:,.0f}/s {b['server_cpu_us_per_delivery']:.2f} µs cpu  "
            f"lock-step {lock['deliveries_per_s']:,.0f}/s {lock['server_cpu_us_per_delivery']:.2f} µs cpu  "
            f"client {b['client_cpu_util']:.0%}/{lock['client_cpu_util']:.0%}"
        )
    if s == "handshakes":
        return f"{result['sequential_per_s']:,.0f}/s sequential  {result['concurrent_per_s']:,.0f}/s concurrent"
    if "skipped" in result:
        return "skipped: " + result["skipped"]
    return ""


#: Scenarios that run against a server process of their own, started after the
#: process of the other scenarios has stopped: the fan-out's peak RSS in bursts
#: (``VmHWM`` reset at idle) starts from the process's idle RSS, and after the
#: memory scenario that RSS still holds what 10,000 connections left behind.
OWN_PROCESS = ("fanout",)


def server_processes(scenarios: list[str]) -> list[list[str]]:
    """The scenarios of one server in one round, split into what each fresh server process runs, in order."""
    shared = [s for s in scenarios if s not in OWN_PROCESS]
    alone = [[s] for s in OWN_PROCESS if s in scenarios]
    return ([shared] if shared else []) + alone


def run_one(
    spec: ServerSpec,
    round_no: int,
    params: dict,
    scenarios: list[str],
    progress: Progress,
    work: Path,
) -> list[dict]:
    """Start ``spec`` on a fresh port, run ``scenarios`` against it with the load client, stop it."""
    port = free_port()
    data_dir = tempfile.mkdtemp(prefix=f"{spec.impl}-", dir=work)
    log_path = work / f"{spec.name}-round{round_no}-{'-'.join(scenarios)}.log"
    env = dict(
        os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")
    )
    results: list[dict] = []
    proc = start(spec.command(port, data_dir), log=log_path, cwd=REPO, env=env)
    try:
        wait_for_port(port, process=proc, name=spec.name)
        client = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.client",
                "--port",
                str(port),
                "--protocol",
                spec.protocol,
                "--server-pid",
                str(proc.pid),
                "--scenarios",
                ",".join(scenarios),
                "--params",
                json.dumps(params),
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert client.stdout is not None
        load_before = loadavg()
        for line in client.stdout:
            result = json.loads(line)
            result.update(
                server=spec.name,
                impl=spec.impl,
                loop=spec.loop,
                round=round_no,
                server_pid=proc.pid,
            )
            results.append(result)
            progress.line(
                f"round {round_no} {spec.name:18} {result['scenario']:10} {summarise(result)}"
            )
        rc = client.wait(timeout=600)
        if rc != 0:
            results.append(
                {
                    "server": spec.name,
                    "impl": spec.impl,
                    "loop": spec.loop,
                    "round": round_no,
                    "scenario": "client",
                    "ok": False,
                    "error": f"load client exited with {rc}",
                }
            )
        for r in results:
            r["loadavg_before"] = load_before
            r["loadavg_after"] = loadavg()
        if proc.poll() is not None:
            results.append(
                {
                    "server": spec.name,
                    "impl": spec.impl,
                    "loop": spec.loop,
                    "round": round_no,
                    "scenario": "server",
                    "ok": False,
                    "error": f"server died with {proc.returncode}",
                }
            )
    except (
        Exception
    ) as exc:  # keep going with the other servers; the report lists the failure
        results.append(
            {
                "server": spec.name,
                "impl": spec.impl,
                "loop": spec.loop,
                "round": round_no,
                "scenario": "start",
                "ok": False,
                "error": f"{type(exc).__name__}: {exc}",
            }
        )
        progress.line(f"round {round_no} {spec.name}: FAILED {exc}")
    finally:
        stop(proc)
    if any(
        not r.get("ok") for r in results
    ):  # the work directory goes away: keep what the server said
        tail = log_path.read_text(errors="replace")[-3000:]
        for r in results:
            if not r.get("ok"):
                r["server_log_tail"] = tail
    shutil.rmtree(data_dir, ignore_errors=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke test: tiny counts, one round"
    )
    parser.add_argument("--rounds", type=int, help="rounds (default 3; 1 with --quick)")
    parser.add_argument(
        "--servers",
        help=f"comma-separated subset of {', '.join(s.name for s in ALL_SERVERS)}",
    )
    parser.add_argument(
        "--scenarios", default="memory,echo64,echo16k,rtt,handshakes,fanout"
    )
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "RESULTS.md")
    parser.add_argument(
        "--plots", type=Path, help="plot directory (default: plots/ beside --out)"
    )
    parser.add_argument(
        "--json", type=Path, help="raw results (default: results.json beside --out)"
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="re-render the report and plots from the JSON, run nothing",
    )
    args = parser.parse_args(argv)

    profile = "quick" if args.quick else "default"
    params = dict(PROFILES[profile])
    rounds = args.rounds or params.pop("rounds")
    params.pop("rounds", None)
    servers = ALL_SERVERS
    if args.servers:
        wanted = args.servers.split(",")
        unknown = set(wanted) - {s.name for s in ALL_SERVERS}
        if unknown:
            parser.error(f"unknown server(s): {', '.join(sorted(unknown))}")
        servers = [s for s in ALL_SERVERS if s.name in wanted]
    out: Path = args.out
    plots_dir = args.plots or out.parent / "plots"
    json_path = args.json or out.parent / "results.json"
    command = (
        "python -m bench"
        + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip()
    )
    nofile = raise_nofile()

    from bench import report  # matplotlib is imported only when the report is written

    if args.report_only:
        if not json_path.exists():
            parser.error(
                f"{json_path} not found: a run writes it (python -m bench …);"
                " it is not committed"
            )
        saved = json.loads(json_path.read_text())
        report.write_report(out, plots_dir, saved["meta"], saved["results"])
        print(f"wrote {out} and {plots_dir}/ from {json_path}", file=sys.stderr)
        return 0

    started = datetime.now(UTC)
    total = rounds * len(servers)
    progress = Progress(total)
    progress.line(
        f"{len(servers)} servers × {rounds} round(s), profile {profile}, RLIMIT_NOFILE {nofile[0]}"
    )
    results: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="rawws-bench-") as tmp:
        work = Path(tmp)
        for r in range(1, rounds + 1):
            k = (r - 1) % len(servers)
            scenarios = args.scenarios.split(",")
            if r > params["memory_rounds"]:
                scenarios = [s for s in scenarios if s != "memory"]
            for spec in servers[k:] + servers[:k]:
                for group in server_processes(scenarios):
                    results += run_one(spec, r, params, group, progress, work)
                progress.done += 1
            progress.line(f"round {r} done")

    finished = datetime.now(UTC)
    meta = report.machine_info()
    meta.update(
        command=command,
        profile=profile,
        params=params,
        rounds=rounds,
        started=started.isoformat(),
        finished=finished.isoformat(),
        servers=[s.name for s in servers],
        nofile=list(nofile),
        own_process=list(OWN_PROCESS),
    )
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(
        json.dumps(
            {"meta": meta, "results": results},
            indent=1,
            default=str,
        )
    )
    report.write_report(out, plots_dir, meta, results)
    progress.line(f"wrote {out}, {plots_dir}/, {json_path}")
    failures = [r for r in results if not r.get("ok")]
    if failures:
        progress.line(f"{len(failures)} scenario(s) FAILED; see the report")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
