"""`rawws serve` nodes as real subprocesses, for the tests that kill one."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from pathlib import Path

START_TIMEOUT_S = 30.0
LISTENING = re.compile(rb"listening on https?://[^:]+:(\d+)")


class Node:
    """One `rawws serve` process; its stderr is kept in ``log`` (bytes) as it runs."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.log = bytearray()
        self.port = 0
        self._reader: asyncio.Task[None] | None = None

    async def wait_listening(self) -> None:
        assert self.process.stderr is not None
        async with asyncio.timeout(START_TIMEOUT_S):
            while not (found := LISTENING.search(self.log)):
                line = await self.process.stderr.readline()
                if not line:
                    raise AssertionError(f"rawws serve exited before listening:\n{self.log.decode(errors='replace')}")
                self.log += line
        self.port = int(found.group(1))
        self._reader = asyncio.get_running_loop().create_task(self._keep_reading())

    async def _keep_reading(self) -> None:
        assert self.process.stderr is not None
        while line := await self.process.stderr.readline():
            self.log += line

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGKILL)

    async def stop(self, sig: int = signal.SIGTERM) -> int:
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(sig)
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                code = await self.process.wait()
        except TimeoutError:
            self.kill()
            code = await self.process.wait()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await self._reader
        return code


async def start_node(data_dir: Path, *flags: str, env: dict[str, str] | None = None) -> Node:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rawws", "serve", "--port", "0", "--data-dir", str(data_dir), *flags,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    node = Node(process)
    try:
        await node.wait_listening()
    except BaseException:
        node.kill()
        await process.wait()
        raise
    return node
