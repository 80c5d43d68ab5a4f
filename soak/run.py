"""One soak run: start `rawws serve`, load it, abuse it, stop and kill it, then check every book."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from soak.attacks import (
    HeldSockets,
    Hostile,
    SlowReader,
    drain_slow_reader,
    hold,
    hostile,
    slow_reader,
)
from soak.clients import MEMBER_MARK, Books, ChatClient, member_entry
from soak.edges import close_code_flood, report_edges, watch_readiness
from soak.frame_cost import frame_cost
from soak.profiles import Profile
from testkit import StartupFailed, chat_token, free_port, start, stop, wait_for_port

PASSWORD = "soak-Passw0rd-horse"
BIG_TEXT_CHARS = 4000
SERVER_FLAGS = [
    "--registrations-per-hour-per-address", "1000000",
    "--websockets-per-address", "1000000",
    "--tickets-per-minute-per-user", "1000000",
]  # fmt: skip


@dataclass
class Server:
    port: int
    data_dir: str
    db_url: str | None
    process: subprocess.Popen[bytes] | None = None
    log: Path = field(
        default_factory=lambda: Path(
            tempfile.mkstemp(prefix="rawws-soak-", suffix=".log")[1]
        )
    )
    rss_peak_kib: int = 0
    starts: int = 0
    metrics_port: int = field(default_factory=free_port)

    def start(self) -> None:
        command = [
            sys.executable,
            "-m",
            "rawws",
            "serve",
            "--port",
            str(self.port),
            "--data-dir",
            self.data_dir,
            "--metrics-port",
            str(self.metrics_port),
        ]
        command += ["--log-level", "WARNING", *SERVER_FLAGS] + (
            ["--db", self.db_url] if self.db_url else []
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAWWS_")}
        env["RAWWS_LOGINS_PER_MINUTE_PER_ADDRESS"] = env[
            "RAWWS_LOGINS_PER_MINUTE_PER_USER"
        ] = "1000000"
        # argon2id still, but cheap: the soak registers dozens of users and is about the chat, not hashing.
        env.update(
            RAWWS_ARGON2_TIME_COST="1",
            RAWWS_ARGON2_MEMORY_KIB="8192",
            RAWWS_ARGON2_PARALLELISM="1",
        )
        # one log for every start of the run: a restart must not hide what went before
        self.process = start(command, log=self.log, append=True, env=env)
        self.starts += 1
        try:
            wait_for_port(self.port, process=self.process, name="rawws serve")
        except StartupFailed as error:
            raise StartupFailed(f"{error}; see {self.log}") from None

    def stop(self, sig: int) -> int:
        """Send ``sig`` and wait for the exit code (SIGKILL after 30 s: a hang shows as -9)."""
        assert self.process is not None
        return stop(self.process, sig=sig, grace=30)

    def rss_kib(self) -> int:
        if self.process is None or self.process.poll() is not None:
            return 0
        with (
            contextlib.suppress(OSError),
            open(f"/proc/{self.process.pid}/status") as status,
        ):
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def healthz(self) -> dict[str, int]:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.port}/healthz", timeout=5
        ) as answer:
            payload: dict[str, int] = json.load(answer)
            return payload


@dataclass
class Outcome:
    """Everything the table shows."""

    profile: str
    database: str
    figures: dict[str, object] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


async def postgres_outage(db_url: str, seconds: float) -> None:
    """The database refuses every connection for ``seconds`` (existing ones are cut), then comes back."""
    import asyncpg
    import sqlalchemy as sa

    url = sa.engine.make_url(db_url)
    admin = await asyncpg.connect(
        host=url.host, port=url.port, user=url.username, database="postgres"
    )
    try:
        await admin.execute(f'ALTER DATABASE "{url.database}" ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
            url.database,
        )
        await asyncio.sleep(seconds)
    finally:
        await admin.execute(f'ALTER DATABASE "{url.database}" ALLOW_CONNECTIONS true')
        await admin.close()


async def stored_messages(
    db_url: str | None, data_dir: str, rooms: list[str]
) -> dict[tuple[str, int], str]:
    """Every id of the rooms: a message's text, or a membership event's ``member_entry``."""
    from rawws.store import open_store, sqlite_url
    from rawws.store.base import SAY

    store = await open_store(db_url or sqlite_url(data_dir))
    try:
        found: dict[tuple[str, int], str] = {}
        for room in rooms:
            after = 0
            while page := await store.messages_after(room, after, 5000):
                found.update(
                    {
                        (m.room, m.id): m.text
                        if m.kind == SAY
                        else member_entry(m.kind, m.target, m.user)
                        for m in page
                    }
                )
                after = page[-1].id
        return found
    finally:
        await store.close()


def account(
    books: list[Books], stored: dict[tuple[str, int], str], outcome: Outcome
) -> None:
    """Exact accounting: every ack against the store, every client's deliveries against the store.

    A room's ids are its messages and its membership events (the clients' own joins) together: a
    client is owed every stored id after its first join up to the last it received, events included,
    and an event it received must be the stored one as much as a message's text must."""
    acked = {(room, mid): text for b in books for room, mid, text in b.acked.values()}
    lost = sum(1 for key, text in acked.items() if stored.get(key) != text)
    stored_texts = set(stored.values())
    stored_events = sum(1 for entry in stored.values() if entry.startswith(MEMBER_MARK))
    unresolved_stored = sum(
        1
        for b in books
        for _room, text in b.unresolved.values()
        if text in stored_texts
    )
    duplicates = out_of_order = missed = delivered = 0
    by_room: dict[str, list[int]] = {}
    for room, mid in stored:
        by_room.setdefault(room, []).append(mid)
    for b in books:
        for room, ids in b.received.items():
            delivered += len(ids)
            duplicates += len(ids) - len(set(ids))
            out_of_order += sum(
                1
                for earlier, later in zip(ids, ids[1:], strict=False)
                if later <= earlier
            )
            base, top = b.base.get(room, 0), max(ids)
            owed = {mid for mid in by_room.get(room, []) if base < mid <= top}
            missed += len(owed - set(ids))
            wrong_text = sum(
                1 for mid in set(ids) if b.texts[(room, mid)] != stored.get((room, mid))
            )
            duplicates += wrong_text  # a delivered text that is not the stored one counts as a corruption
    outcome.figures.update(
        said=sum(b.sent for b in books),
        acked=len(acked),
        refused=sum(len(b.refused) for b in books),
        unanswered_at_a_drop=sum(len(b.unresolved) for b in books),
        of_which_stored=unresolved_stored,
        stored=len(stored) - stored_events,
        stored_member_events=stored_events,
        deliveries=delivered - sum(b.member_events for b in books),
        member_events_delivered=sum(b.member_events for b in books),
        lost_acked=lost,
        duplicated=duplicates,
        out_of_order=out_of_order,
        missed=missed,
        reconnection_attempts=sum(b.reconnects for b in books),
    )
    for name in ("lost_acked", "duplicated", "out_of_order", "missed"):
        if outcome.figures[name]:
            outcome.failures.append(f"{name}: {outcome.figures[name]}")
    if not acked:
        outcome.failures.append("nothing was acked")


async def run(profile: Profile, db_url: str | None = None) -> Outcome:
    outcome = Outcome(profile.name, "postgresql" if db_url else "sqlite")
    data_dir = tempfile.mkdtemp(prefix="rawws-soak-")
    server = Server(free_port(), data_dir, db_url)
    server.start()
    try:
        await _run(profile, server, outcome)
    finally:
        if server.process is not None and server.process.poll() is None:
            server.stop(signal.SIGTERM)
    return outcome


async def _run(profile: Profile, server: Server, outcome: Outcome) -> None:
    loop = asyncio.get_running_loop()
    rooms = [f"room{n}" for n in range(profile.rooms)]
    names = [f"soak{n}" for n in range(profile.clients)]
    tokens = await asyncio.gather(
        *(
            loop.run_in_executor(None, chat_token, server.port, n, PASSWORD)
            for n in names
        )
    )
    clients = [
        ChatClient(
            name,
            token,
            server.port,
            [rooms[i % len(rooms)], rooms[(i + 1) % len(rooms)]],
        )
        for i, (name, token) in enumerate(zip(names, tokens, strict=True))
    ]
    flood_room = "flood"
    flooder_tokens = [
        await loop.run_in_executor(None, chat_token, server.port, f"flood{n}", PASSWORD)
        for n in range(profile.flooders)
    ]
    flooders = [
        ChatClient(
            f"flood{n}", token, server.port, [flood_room], text_chars=BIG_TEXT_CHARS
        )
        for n, token in enumerate(flooder_tokens)
    ]
    slow_token = await loop.run_in_executor(
        None, chat_token, server.port, "slowreader", PASSWORD
    )
    hostile_token = await loop.run_in_executor(
        None, chat_token, server.port, "hostile", PASSWORD
    )

    edges_token = await loop.run_in_executor(
        None, chat_token, server.port, "edges", PASSWORD
    )

    stop, flood_on = asyncio.Event(), asyncio.Event()
    readiness = asyncio.create_task(watch_readiness(server.metrics_port, stop))
    tasks = [asyncio.create_task(c.run(stop, profile.say_interval_s)) for c in clients]
    tasks += [asyncio.create_task(f.run(stop, 0.11, flood_on)) for f in flooders]
    hostile_task = asyncio.create_task(
        hostile(server.port, hostile_token, stop, profile.hostile_per_s)
    )
    began = time.monotonic()

    async def sample_rss() -> None:
        while not stop.is_set():
            server.rss_peak_kib = max(server.rss_peak_kib, server.rss_kib())
            await asyncio.sleep(0.25)

    sampler = asyncio.create_task(sample_rss())
    await asyncio.sleep(1.0)
    baseline_kib = server.rss_kib()
    codes = asyncio.create_task(
        close_code_flood(server.port, server.metrics_port, edges_token)
    )
    # A slow reader among the flood's fast readers (the flooders read their room too).
    slow_sock, slow = await slow_reader(server.port, slow_token, flood_room)
    flood_on.set()
    held = asyncio.gather(
        hold(server.port, profile.slowloris, trickle=True, give_up_s=30),
        hold(server.port, profile.silent, trickle=False, give_up_s=30),
    )
    slow_peak_kib = 0
    deadline = began + profile.duration_s * (profile.sigterm_at - 0.05)
    while time.monotonic() < deadline:
        slow_peak_kib = max(slow_peak_kib, server.rss_kib())
        if (await loop.run_in_executor(None, server.healthz))[
            "slow_consumers_closed"
        ] >= 1:
            slow.closed_at = time.monotonic()
            break
        await asyncio.sleep(0.1)
    flood_on.clear()
    await drain_slow_reader(slow_sock, slow, timeout_s=15)
    assert server.process is not None
    bomber, holder = await asyncio.gather(
        *(
            loop.run_in_executor(None, chat_token, server.port, name, PASSWORD)
            for name in ("bomber", "holder")
        )
    )
    costs = await frame_cost(server.port, server.process.pid, bomber, holder)

    flood = await codes  # its metric is read before the restarts reset the counters
    phases = [("sigterm", profile.sigterm_at), ("sigkill", profile.sigkill_at)]
    if server.db_url:
        phases.append(("outage", profile.outage_at))
    stops: dict[str, int] = {}
    for phase, at in phases:
        await asyncio.sleep(
            max(0.0, began + profile.duration_s * at - time.monotonic())
        )
        if phase == "outage":
            assert server.db_url is not None
            await postgres_outage(server.db_url, profile.outage_s)
            continue
        stops[phase] = await loop.run_in_executor(
            None, server.stop, signal.SIGTERM if phase == "sigterm" else signal.SIGKILL
        )
        server.start()
    await asyncio.sleep(max(0.0, began + profile.duration_s - time.monotonic()))
    stop.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 60)
    hostile_result: Hostile = await asyncio.wait_for(hostile_task, 30)
    loris, silent = await asyncio.wait_for(held, 60)
    sampler.cancel()
    watched = await asyncio.wait_for(readiness, 60)
    alive = server.process is not None and server.process.poll() is None

    stored = await stored_messages(server.db_url, server.data_dir, [*rooms, flood_room])
    account([c.books for c in clients + flooders], stored, outcome)
    _report_attacks(
        outcome,
        server,
        slow,
        loris,
        silent,
        hostile_result,
        stops,
        alive,
        baseline_kib,
        slow_peak_kib,
    )
    outages = 1 if server.db_url else 0
    report_edges(outcome.figures, outcome.failures, flood, watched, server.log, outages)
    outcome.figures.update(costs.figures)
    outcome.failures += costs.failures


def _report_attacks(
    outcome: Outcome,
    server: Server,
    slow: SlowReader,
    loris: HeldSockets,
    silent: HeldSockets,
    hostile_result: Hostile,
    stops: dict[str, int],
    alive: bool,
    baseline_kib: int,
    slow_peak_kib: int,
) -> None:
    figures = outcome.figures
    figures["sigterm_exit_code"] = stops.get("sigterm")
    figures["sigkill_exit_code"] = stops.get("sigkill")
    figures["server_starts"] = server.starts
    figures["slow_reader_closed_after_s"] = (
        round(slow.closed_at - slow.joined_at, 1) if slow.closed_at else None
    )
    figures["slow_reader_saw_1008"] = slow.saw_close_frame
    figures["slow_reader_tcp_dropped"] = slow.tcp_dropped
    figures["rss_growth_while_slow_reader_mib"] = round(
        max(0, slow_peak_kib - baseline_kib) / 1024, 1
    )
    figures["rss_peak_mib"] = round(server.rss_peak_kib / 1024, 1)
    figures["slowloris_closed"] = (
        f"{loris.closed_by_server}/{loris.opened} (longest {loris.longest_held_s:.1f} s)"
    )
    figures["silent_closed"] = (
        f"{silent.closed_by_server}/{silent.opened} (longest {silent.longest_held_s:.1f} s)"
    )
    figures["hostile_frames"] = hostile_result.frames_sent
    figures["hostile_connections"] = hostile_result.connections
    figures["server_alive_at_end"] = alive
    if slow.closed_at is None:
        outcome.failures.append("the slow reader was never closed")
    if not slow.tcp_dropped:
        outcome.failures.append("the slow reader's TCP connection was not dropped")
    if (
        loris.closed_by_server != loris.opened
        or silent.closed_by_server != silent.opened
    ):
        outcome.failures.append("a slowloris or silent socket was held open")
    if not alive:
        outcome.failures.append("the server is not running at the end")
    if stops.get("sigterm") != 0:
        outcome.failures.append(f"SIGTERM exit code {stops.get('sigterm')}")
    if hostile_result.frames_sent == 0:
        outcome.failures.append("no hostile frame was sent")


def table(outcome: Outcome) -> str:
    width = max(len(name) for name in outcome.figures)
    lines = [
        f"rawws soak — profile {outcome.profile}, {outcome.database}",
        "-" * (width + 24),
    ]
    lines += [
        f"{name.replace('_', ' '):<{width}}  {value}"
        for name, value in outcome.figures.items()
    ]
    lines.append("-" * (width + 24))
    lines.append(
        "PASS" if not outcome.failures else "FAIL: " + "; ".join(outcome.failures)
    )
    return "\n".join(lines)
