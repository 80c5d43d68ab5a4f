"""The open-files limit: `rawws serve` raises its soft limit to the hard one, and lives through hitting it.

Every connection holds a file descriptor, so the soft limit a service starts
with (often 1,024) would cap a node's members far below what it can hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import re
import resource
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from rawws.server import open_files
from rawws.server.open_files import (
    ACCEPT_OUT_OF_RESOURCES,
    AcceptErrors,
    OpenFiles,
    log_open_files,
    raise_open_files_limit,
)
from testkit import masked_frame
from tests.support.helpers import (
    open_raw,
    read_frame,
    read_http_head,
    upgrade_request,
    wait_for_condition,
)
from tests.support.nodes import Node, start_node

TEXT = 0x1


@pytest.fixture
def restored_limit() -> Iterator[tuple[int, int]]:
    """This process's limits, put back after the test changed them."""
    limits = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        yield limits
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, limits)


def test_the_soft_limit_is_raised_to_the_hard_one(
    restored_limit: tuple[int, int],
) -> None:
    _, hard = restored_limit
    if hard == resource.RLIM_INFINITY or hard < 512:
        pytest.skip(f"needs a finite hard limit of 512 or more, not {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    limits = raise_open_files_limit()
    assert (limits.before, limits.soft, limits.hard) == (256, hard, hard)
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)


def test_a_refused_raise_keeps_the_limit_and_says_so(
    restored_limit: tuple[int, int],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    soft, hard = restored_limit
    if soft == resource.RLIM_INFINITY or hard == resource.RLIM_INFINITY or hard < 512:
        pytest.skip(f"needs finite limits, not {restored_limit}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))

    def refuse(_which: int, _limits: tuple[int, int]) -> None:
        raise ValueError("not allowed here")

    monkeypatch.setattr(open_files.resource, "setrlimit", refuse)
    with caplog.at_level(logging.WARNING, logger="rawws.server"):
        limits = raise_open_files_limit()
    assert (limits.before, limits.soft) == (256, 256)
    assert "could not raise the open-files limit from 256" in caplog.text


def test_the_start_line_says_the_limit_and_whether_it_was_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="rawws.server"):
        log_open_files(OpenFiles(before=1024, soft=65536, hard=65536))
        log_open_files(OpenFiles(before=4096, soft=4096, hard=4096))
    first, second = (record.getMessage() for record in caplog.records)
    assert first == (
        "open files: at most 65536 per process, raised from 1024 (hard limit 65536):"
        " each connection holds one"
    )
    assert second == (
        "open files: at most 4096 per process (hard limit 4096): each connection holds one"
    )


def refused_accept(code: int = errno.EMFILE) -> dict[str, object]:
    """The context asyncio's accept loop hands its exception handler."""
    return {
        "message": ACCEPT_OUT_OF_RESOURCES,
        "exception": OSError(code, os.strerror(code)),
    }


def test_refused_accepts_are_one_line_every_few_seconds_with_a_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = asyncio.new_event_loop()
    now = [100.0]
    errors = AcceptErrors(loop, every_s=5.0, clock=lambda: now[0])
    try:
        with caplog.at_level(logging.WARNING, logger="rawws.server"):
            for step in range(30):  # 30 refusals over 15 s: said at 0, 5 and 10 s
                now[0] = 100.0 + step * 0.5
                errors.handle(loop, refused_accept())
        said = [r.getMessage() for r in caplog.records if r.name == "rawws.server"]
        assert len(said) == 3, said
        assert [s.split("; ")[1].split(" ")[0] for s in said] == ["1", "11", "21"]
        assert all("Too many open files" in s and "Traceback" not in s for s in said)
        assert errors.refused == 30
    finally:
        loop.close()


def test_every_other_loop_error_goes_to_the_default_handler(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop = asyncio.new_event_loop()
    passed: list[dict[str, object]] = []
    monkeypatch.setattr(loop, "default_exception_handler", passed.append)
    errors = AcceptErrors(loop)
    other = {"message": "Task exception was never retrieved", "exception": ValueError()}
    refused_for_another_reason = refused_accept(errno.ECONNABORTED)
    try:
        errors.handle(loop, other)
        errors.handle(loop, refused_for_another_reason)
        assert passed == [other, refused_for_another_reason]
        assert errors.refused == 0
    finally:
        loop.close()


# -- a real `rawws serve` ------------------------------------------------------------------


def prlimit(soft: int, hard: int) -> list[str]:
    """util-linux's ``prlimit``, which starts a command with the limits given."""
    found = shutil.which("prlimit")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("prlimit (util-linux) is required under CI")
        pytest.skip("prlimit not installed")
    return [found, f"--nofile={soft}:{hard}", "--"]


def process_open_files_limit(pid: int) -> tuple[int, int]:
    text = Path(f"/proc/{pid}/limits").read_text()
    found = re.search(r"^Max open files\s+(\d+)\s+(\d+)", text, re.MULTILINE)
    assert found, text
    return int(found[1]), int(found[2])


async def test_serve_raises_its_soft_limit_and_logs_it(tmp_path: Path) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard < 512:
        pytest.skip(f"needs a finite hard limit of 512 or more, not {hard}")
    node = await start_node(tmp_path, "--echo", wrapper=prlimit(256, hard))
    try:
        assert process_open_files_limit(node.process.pid) == (hard, hard)
        said = f"open files: at most {hard} per process, raised from 256"
        await wait_for_condition(lambda: said in node.log(), what=said)
    finally:
        await node.stop()


async def upgraded(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await open_raw(port)
    writer.write(upgrade_request())
    status, _, _ = await read_http_head(reader, 3.0)
    assert status == 101
    return reader, writer


async def echoes(port: int, text: bytes) -> bool:
    """One fresh /echo connection gets ``text`` back."""
    reader, writer = await upgraded(port)
    try:
        writer.write(masked_frame(TEXT, text))
        opcode, payload, _ = await read_frame(reader, 3.0)
        return (opcode, payload) == (TEXT, text)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def test_a_node_at_its_limit_keeps_its_connections_and_takes_new_ones_after(
    tmp_path: Path,
) -> None:
    """Past the limit the kernel refuses accept (EMFILE): the node keeps serving the connections it has,
    does not crash, and accepts again once some are gone."""
    limit = 96
    node: Node = await start_node(tmp_path, "--echo", wrapper=prlimit(limit, limit))
    opened: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        attempts = await asyncio.gather(
            *(asyncio.wait_for(upgraded(node.port), 4.0) for _ in range(limit + 40)),
            return_exceptions=True,
        )
        opened = [pair for pair in attempts if not isinstance(pair, BaseException)]
        assert 0 < len(opened) < limit, (
            f"{len(opened)} upgraded under a limit of {limit}"
        )
        reader, writer = opened[0]
        writer.write(masked_frame(TEXT, b"still here"))
        assert await read_frame(reader, 3.0) == (TEXT, b"still here", True)
        for _, writer in opened:
            writer.close()
        opened = []
        deadline = asyncio.get_running_loop().time() + 15
        while True:  # asyncio retries accept a second after EMFILE
            try:
                if await echoes(node.port, b"after the limit"):
                    break
            except (OSError, TimeoutError, asyncio.IncompleteReadError):
                pass
            assert asyncio.get_running_loop().time() < deadline, node.log()
            await asyncio.sleep(0.2)
        assert node.process.returncode is None
        log = node.log()
        assert ACCEPT_OUT_OF_RESOURCES not in log and "Traceback" not in log, log
        said = log.count("cannot accept connections: Too many open files")
        assert 1 <= said <= 5, log  # one line per 5 s, not one per attempt
    finally:
        for _, writer in opened:
            writer.close()
        await node.stop()
