"""The scale study's figures as Markdown lines, for its block in bench/RESULTS.md (``bench.blocks``)."""

from __future__ import annotations

import platform
from datetime import UTC, datetime

BIG_GOALS = "p99 ≤ 1 s, ≤ 6.5 KiB per member, 0 lost"
P99_GOAL_MS = 50.0


def _client(result: dict) -> str:
    return "C, epoll" if result["client"] == "c" else "Python, uvloop"


def _processes(count: int) -> str:
    return f"{count} process" if count == 1 else f"{count} processes"


def _when() -> str:
    return f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.python_version()}"


def big_lines(result: dict, command: str) -> list[str]:
    """One room of many members: the last member's delay, memory per member, the counts."""
    return [
        f"### A room of {result['members']:,} members on one machine (issue 25, item 1)",
        "",
        f"`{command}` ({_when()}): `rawws serve --workers {result['workers']}` on SQLite, the"
        " workers sharing the room through `redis-server`; the load client in"
        f" {_processes(result['load_processes'])} ({_client(result)}, one source address each);"
        " one sender,"
        f" {result['messages']} messages. Goal: {BIG_GOALS}.",
        "",
        "| figure | value |",
        "|---|---:|",
        f"| members joined | {result['members']:,} (in {result['open_s']:.0f} s) |",
        f"| joins tried again (refused or cut while joining) | {result['join_retries']:,} |",
        f"| deliveries | {result['deliveries']:,} |",
        f"| lost / out of order / members short | {result['lost']} / {result['out_of_order']}"
        f" / {result['members_short']} |",
        f"| last member's delay p50 / p99, ms | {result['last_member_p50_ms']:.0f} /"
        f" {result['last_member_p99_ms']:.0f} |",
        f"| every delivery p50 / p99, ms | {result['delivery_p50_ms']:.0f} /"
        f" {result['delivery_p99_ms']:.0f} |",
        f"| server RSS per member, KiB | {result['rss_per_member_kib']:.1f} |",
        f"| server RSS in all, MiB | {result['server_rss_mib']:.0f} |",
        f"| server CPU per delivery, µs | {result['server_cpu_us_per_delivery']:.2f} |",
        f"| load client CPU per delivery, µs | {result['client_cpu_us_per_delivery']:.2f} |",
    ]


def rate_lines(results: list[dict], command: str) -> list[str]:
    """Latency at steady rates: every delivery's p50 / p99, and the client's CPU beside the server's."""
    first = results[0]
    lines = [
        f"### Publish → deliver at steady rates, {first['members']:,} members (issue 25, item 2)",
        "",
        f"`{command}` ({_when()}): one `rawws serve`, the load client in"
        f" {_processes(first['load_processes'])} ({_client(first)}), senders under the chat's"
        " 10/s each.",
        "",
        "| db | rate msg/s | deliveries | lost | p50 ms | p99 ms | last member p99 ms"
        " | server CPU µs / delivery | client CPU µs / delivery |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['db']} | {r['rate']:.0f} | {r['deliveries']:,} | {r['lost']} |"
            f" {r['delivery_p50_ms']:.1f} | {r['delivery_p99_ms']:.1f} |"
            f" {r['last_member_p99_ms']:.1f} | {r['server_cpu_us_per_delivery']:.2f} |"
            f" {r['client_cpu_us_per_delivery']:.2f} |"
        )
    lines.append("")
    for db in sorted({r["db"] for r in results}):
        rates = [
            r["rate"]
            for r in results
            if r["db"] == db and r["delivery_p99_ms"] < P99_GOAL_MS
        ]
        best = f"{max(rates):.0f} msg/s" if rates else "none of the rates measured"
        lines.append(
            f"- {db}: highest rate measured with p99 < {P99_GOAL_MS:.0f} ms: {best}."
        )
    return lines
