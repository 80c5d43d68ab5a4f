"""The benchmark's server registry: which echo servers run, on which loops, and how each is started.

Its own module so that the harness (which runs them) and the report (which
names them in tables and plots) both read it without importing each other.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

HOST = "127.0.0.1"


@dataclass(frozen=True)
class ServerSpec:
    impl: str  # rawws, rawws-lib, websockets, picows, aiohttp, floor
    loop: str  # asyncio or uvloop

    @property
    def name(self) -> str:
        return self.impl if self.loop == "asyncio" else f"{self.impl}+uvloop"

    @property
    def protocol(self) -> str:
        return "floor" if self.impl == "floor" else "ws"

    def command(self, port: int, data_dir: str) -> list[str]:
        py = sys.executable
        if self.impl == "rawws":
            # `rawws serve` itself (same parser, config and routes) plus the /fanout endpoint
            launcher = ["-m", "bench.servers.rawws_server"] + (
                ["--uvloop"] if self.loop == "uvloop" else []
            )
            return [
                py,
                *launcher,
                "serve",
                "--echo",
                "--no-compression",
                "--port",
                str(port),
                "--host",
                HOST,
                "--log-level",
                "WARNING",
                "--data-dir",
                data_dir,  # rawws opens its SQLite user store here: keep it out of the work tree
                "--websockets-per-address",  # every load client comes from 127.0.0.1
                "1000000",
            ]
        module = {
            "rawws-lib": "rawws_library",  # rawws.serve alone: the library, without the chat
            "websockets": "websockets_echo",
            "picows": "picows_echo",
            "aiohttp": "aiohttp_echo",
            "floor": "floor_echo",
        }[self.impl]
        cmd = [py, "-m", f"bench.servers.{module}", "--port", str(port), "--host", HOST]
        return cmd + (["--uvloop"] if self.loop == "uvloop" else [])


IMPLS = ("rawws", "rawws-lib", "websockets", "picows", "aiohttp", "floor")
LOOPS = ("asyncio", "uvloop")
ALL_SERVERS = [ServerSpec(impl, loop) for loop in LOOPS for impl in IMPLS]
REFERENCE = "websockets"
