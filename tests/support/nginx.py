"""A real nginx with deploy/nginx.conf in front of test nodes, on a free loopback port with a temporary prefix.

The file is used as shipped except for what a test must change: the listen
port, the upstream nodes, one worker (so round-robin is predictable) and the
paths nginx writes (pid, logs, temp files) under the prefix. Without nginx the
tests that need it are skipped, except in CI (``CI=true``), where they fail.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from testkit import free_port, stop

REPO_ROOT = Path(__file__).resolve().parents[2]
CONF = REPO_ROOT / "deploy" / "nginx.conf"
START_TIMEOUT_S = 10.0


def nginx_binary() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None
    )
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("nginx is required in CI (Debian's nginx package)")
        pytest.skip("nginx not installed")
    return found


def render_conf(port: int, upstreams: list[int], prefix: Path) -> str:
    """deploy/nginx.conf with this test's port, nodes and writable paths."""
    text = CONF.read_text()
    text = text.replace("worker_processes auto;", "worker_processes 1;", 1)
    text, listens = re.subn(
        r"^(\s*)listen 80;", rf"\1listen 127.0.0.1:{port};", text, flags=re.M
    )
    assert listens == 1, "deploy/nginx.conf must have one `listen 80;`"
    servers = "".join(
        f"        server 127.0.0.1:{node} max_fails=1 fail_timeout=5s;\n"
        for node in upstreams
    )
    text, replaced = re.subn(
        r"(upstream rawws \{\n(?:\s*#.*\n)*)(?:\s*server .*\n)+",
        rf"\g<1>{servers}",
        text,
    )
    assert replaced == 1, "deploy/nginx.conf must list its nodes in `upstream rawws`"
    paths = "".join(
        f"    {directive} {prefix / name};\n"
        for directive, name in (
            ("client_body_temp_path", "body"),
            ("proxy_temp_path", "proxy"),
            ("fastcgi_temp_path", "fastcgi"),
            ("uwsgi_temp_path", "uwsgi"),
            ("scgi_temp_path", "scgi"),
        )
    )
    return text.replace(
        "http {\n", f"http {{\n    access_log {prefix / 'access.log'};\n{paths}", 1
    )


@dataclass
class Nginx:
    binary: str
    prefix: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    def error_log(self) -> str:
        path = self.prefix / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def test_conf(self, conf: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                self.binary,
                "-t",
                "-p",
                str(self.prefix),
                "-c",
                str(conf),
                "-g",
                self._globals(),
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    def _globals(self) -> str:
        return f"daemon off; pid {self.prefix / 'nginx.pid'}; error_log {self.prefix / 'error.log'} info;"

    async def start(
        self, upstreams: list[int], variant: Callable[[str], str] | None = None
    ) -> int:
        """Run nginx in front of ``upstreams``; the port it listens on.

        ``variant`` rewrites the rendered configuration: a proxy configured otherwise than
        deploy/nginx.conf (one that drops ``Upgrade``, one that buffers), for the fallbacks.
        """
        assert self.process is None
        self.port = free_port()
        conf = self.prefix / "nginx.conf"
        text = render_conf(self.port, upstreams, self.prefix)
        conf.write_text(variant(text) if variant is not None else text)
        checked = self.test_conf(conf)
        assert checked.returncode == 0, checked.stderr
        self.process = subprocess.Popen(
            [
                self.binary,
                "-p",
                str(self.prefix),
                "-c",
                str(conf),
                "-g",
                self._globals(),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"nginx exited with {self.process.returncode}:\n{self.error_log()}"
                )
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                assert loop.time() < deadline, (
                    f"nginx did not listen within {START_TIMEOUT_S}s:\n{self.error_log()}"
                )
                await asyncio.sleep(0.05)
            else:
                writer.close()
                return self.port

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)  # SIGTERM: nginx's fast shutdown


@pytest.fixture
def nginx() -> Iterator[Nginx]:
    binary = nginx_binary()
    # Under /tmp itself with 0755: nginx's workers run as another user and must reach the temp dirs.
    prefix = Path(tempfile.mkdtemp(prefix="rawws-nginx-"))
    prefix.chmod(0o755)
    proxy = Nginx(binary, prefix)
    try:
        yield proxy
    finally:
        proxy.stop()
        shutil.rmtree(prefix, ignore_errors=True)
