"""Handshakes side by side: server CPU per connect + upgrade (+ welcome) + close, rawws against websockets.

    python -m experiments.perf.auth_handshake [--quick] [--rounds 5] [--handshakes 3000] [--concurrency 50] [--base-tree DIR]

* echo: ``/echo`` on ``rawws serve --echo`` against websockets' echo server:
  connect, upgrade, close handshake, EOF.
* auth: the chat's real handshake. rawws's ``/ws`` checks a bearer access
  token (PyJWT, HS256) before the 101 and sends ``welcome``; the peer is
  websockets checking the same kind of token with the same ``jwt.decode``
  options in ``process_request`` and sending the same ``welcome``
  (``experiments/perf/websockets_jwt.py``). The client waits for the welcome,
  then closes.
* the auth step alone: rawws's ``Tokens.verify`` and the peer's ``jwt.decode``
  timed in this process, CPU per call.

``--base-tree DIR`` adds ``rawws@base``: rawws run from an unpacked earlier
commit (``testkit/base_tree.py``), to show a change against the code before it
in the same run.

A fresh server process per measurement, rounds in rotating order, 10% of
the handshakes first as a warm-up; figures are server CPU (utime + stime) ÷
handshakes, medians over rounds, and handshakes/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import secrets
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import jwt

from bench.blocks import write_block
from experiments.perfkit import (
    CHAT_ENV,
    HOST,
    PASSWORD,
    ServerProcess,
    cpu_seconds,
    median,
    raise_fd_limit,
    rawws_command,
    upgrade_request,
)
from rawws.accounts.tokens import Tokens, TokenSettings
from testkit import chat_token, masked_frame

PEER_SECRET = "bench secret that is at least 32 bytes long"
CLOSE_1000 = masked_frame(0x8, b"\x03\xe8")


def peer_token(user: str = "bench") -> str:
    """The same claims, in the same order and sizes, as the access tokens rawws issues."""
    now = int(time.time())
    claims = {
        "sub": user,
        "iat": now,
        "exp": now + 3600,
        "iss": "rawws",
        "aud": "rawws",
        "jti": secrets.token_urlsafe(16),
        "typ": "access",
    }
    return jwt.encode(claims, PEER_SECRET, algorithm="HS256")


SCENARIOS = {
    # name: {server: (command, env, path, needs a rawws token)}
    "echo": {
        "rawws": (rawws_command("--echo"), {}, "/echo", False),
        "websockets": (
            [sys.executable, "-m", "bench.servers.websockets_echo", "--port", "{port}"],
            {},
            "/echo",
            False,
        ),
    },
    "auth": {
        "rawws": (rawws_command(), CHAT_ENV, "/ws", True),
        "websockets+PyJWT": (
            [
                sys.executable,
                "-m",
                "experiments.perf.websockets_jwt",
                "--port",
                "{port}",
            ],
            {"RAWWS_BENCH_JWT_SECRET": PEER_SECRET},
            "/ws",
            False,
        ),
    },
}


PEERS = {"echo": "websockets", "auth": "websockets+PyJWT"}


def add_base_tree(tree: str) -> None:
    """``rawws@base`` in every scenario: the same command, importing rawws from ``tree``."""
    for servers in SCENARIOS.values():
        command, env, path, token = servers["rawws"]
        base = [sys.executable, "-m", "testkit.base_tree", tree, *command[3:]]
        servers["rawws@base"] = (base, env, path, token)


async def one_handshake(port: int, path: str, token: str | None, welcome: bool) -> None:
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(upgrade_request(port, path, token=token))
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise RuntimeError(head.split(b"\r\n")[0].decode())
        if welcome:
            first, length = await reader.readexactly(2)
            payload = await reader.readexactly(length & 0x7F)
            if b'"welcome"' not in payload:
                raise RuntimeError(f"expected a welcome, got {payload[:60]!r}")
        writer.write(CLOSE_1000)
        while await reader.read(65536):
            pass
    finally:
        writer.close()


async def handshake_load(
    port: int, path: str, token: str | None, welcome: bool, count: int, concurrency: int
) -> int:
    errors = 0
    remaining = count

    async def worker() -> None:
        nonlocal remaining, errors
        while remaining > 0:
            remaining -= 1
            try:
                await one_handshake(port, path, token, welcome)
            except (OSError, RuntimeError, asyncio.IncompleteReadError):
                errors += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return errors


def measure(scenario: str, name: str, count: int, concurrency: int) -> dict[str, float]:
    command, env, path, rawws_token = SCENARIOS[scenario][name]
    server = ServerProcess(name, command, env).start()
    try:
        token = None
        if scenario == "auth":
            token = (
                chat_token(server.port, "bench", PASSWORD)
                if rawws_token
                else peer_token()
            )
        welcome = scenario == "auth"
        asyncio.run(
            handshake_load(
                server.port, path, token, welcome, max(50, count // 10), concurrency
            )
        )
        cpu0, wall0 = cpu_seconds(server.pid), time.perf_counter()
        errors = asyncio.run(
            handshake_load(server.port, path, token, welcome, count, concurrency)
        )
        cpu, wall = cpu_seconds(server.pid) - cpu0, time.perf_counter() - wall0
    finally:
        server.stop()
    return {"cpu_us": cpu / count * 1e6, "per_s": count / wall, "errors": errors}


def auth_step_alone(calls: int = 5000) -> dict[str, float]:
    """CPU per token check in this process: rawws's ``Tokens.verify`` and the peer's ``jwt.decode``."""
    tokens = Tokens(
        TokenSettings(secret=PEER_SECRET.encode(), issuer="rawws", audience="rawws")
    )
    rawws_token, _ = tokens.issue("bench")
    start = time.process_time()
    for _ in range(calls):
        tokens.verify(rawws_token)
    rawws_us = (time.process_time() - start) / calls * 1e6
    token = peer_token()
    start = time.process_time()
    for _ in range(calls):
        jwt.decode(
            token,
            PEER_SECRET.encode(),
            algorithms=["HS256"],
            audience="rawws",
            issuer="rawws",
            options={"require": ["exp", "iat", "sub", "iss", "aud"]},
        )
    peer_us = (time.process_time() - start) / calls * 1e6
    return {"rawws Tokens.verify": rawws_us, "jwt.decode (websockets peer)": peer_us}


def table_lines(
    results: dict[str, dict[str, list[dict[str, float]]]], alone: dict[str, float]
) -> list[str]:
    """The figures as Markdown: medians, and each server's per-round ratio to its scenario's peer."""
    lines = [
        "| scenario | server | server CPU µs / handshake (median) | vs peer: median of per-round ratios [range] | handshakes/s | errors |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for scenario, by_name in results.items():
        peer_rounds = [r["cpu_us"] for r in by_name[PEERS[scenario]]]
        for name, rounds in by_name.items():
            ratios = [r["cpu_us"] / p for r, p in zip(rounds, peer_rounds, strict=True)]
            cpu = median([r["cpu_us"] for r in rounds])
            rate = median([r["per_s"] for r in rounds])
            errors = sum(r["errors"] for r in rounds)
            lines.append(
                f"| {scenario} | {name} | {cpu:.0f} | {median(ratios):.2f}× "
                f"[{min(ratios):.2f}–{max(ratios):.2f}] | {rate:.0f} | {errors:.0f} |"
            )
    lines += ["", "| auth step alone | CPU µs / check |", "|---|---:|"]
    lines += [f"| {name} | {value:.1f} |" for name, value in alone.items()]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.perf.auth_handshake",
        description=__doc__.split("\n")[0],
    )
    parser.add_argument(
        "--quick", action="store_true", help="one round of 300 handshakes (a smoke run)"
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--handshakes", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS))
    parser.add_argument(
        "--base-tree",
        help="also run rawws from this unpacked source tree, as rawws@base",
    )
    parser.add_argument("--json", help="write the raw figures here")
    parser.add_argument(
        "--results", help="write the figures as a block of this page (bench/RESULTS.md)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.handshakes = 1, 300
    if args.base_tree:
        add_base_tree(args.base_tree)
    raise_fd_limit()
    results: dict[str, dict[str, list[dict[str, float]]]] = {}
    for scenario in args.scenarios:
        names = list(SCENARIOS[scenario])
        results[scenario] = {name: [] for name in names}
        for round_index in range(args.rounds):
            shift = round_index % len(names)
            for name in names[shift:] + names[:shift]:
                figure = measure(scenario, name, args.handshakes, args.concurrency)
                results[scenario][name].append(figure)
                print(
                    f"  {scenario} round {round_index + 1} {name}: {figure['cpu_us']:.0f} µs CPU, "
                    f"{figure['per_s']:.0f}/s, {figure['errors']:.0f} errors",
                    flush=True,
                )
    alone = auth_step_alone()
    lines = table_lines(results, alone)
    print("\n".join(lines))
    if args.results:
        command = "python -m experiments.perf.auth_handshake " + " ".join(
            argv if argv is not None else sys.argv[1:]
        )
        write_block(
            Path(args.results),
            "auth-handshake",
            command,
            [
                "### Server CPU per handshake, `/echo` and the chat's authenticated `/ws` (issue 25, item 3)",
                "",
                f"`{command}`: {args.rounds} round(s) of {args.handshakes} handshakes "
                f"({args.concurrency} at once), a fresh server process per measurement, rounds "
                f"in rotating order; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, Python "
                f"{platform.python_version()}. The ratio is the median of the per-round "
                "ratios to the peer, with their range.",
                "",
                *lines,
            ],
        )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"handshakes": results, "auth_step_us": alone}, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
