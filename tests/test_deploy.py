"""deploy/rawws.service: accepted by systemd-analyze verify, with the hardening it promises."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rawws.config import ServerConfig, from_env

REPO_ROOT = Path(__file__).resolve().parents[1]
UNIT = REPO_ROOT / "deploy" / "rawws.service"


def directives(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "[")):
            name, _, value = line.partition("=")
            found.setdefault(name, []).append(value)
    return found


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        if os.environ.get("CI") == "true":
            pytest.fail("systemd-analyze is required in CI (Debian's systemd package)")
        pytest.skip("systemd-analyze not installed")
    # The unit as shipped, with ExecStart pointing at this checkout's rawws (verify checks it exists).
    rawws = Path(sys.executable).with_name("rawws")
    assert rawws.exists(), "the rawws script of this environment"
    unit = tmp_path / "rawws.service"
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/rawws", str(rawws)))
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_unit_hardening_and_settings() -> None:
    found = directives(UNIT.read_text())
    for name, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "DynamicUser": "yes",
        "User": "rawws",
        "StateDirectory": "rawws",
        "KillSignal": "SIGTERM",
    }.items():
        assert found.get(name) == [value], name
    assert found["CapabilityBoundingSet"] == [""]
    # Every RAWWS_* it sets is a setting rawws reads (a typo would be silently ignored).
    environment = dict(item.split("=", 1) for item in found["Environment"])
    config = from_env(environment)
    assert config.data_dir == "/var/lib/rawws" and config.metrics_port == 9101 and config.drain_delay_s == 5
    assert config.forwarded_allow_ips == ("127.0.0.1",) and config.log_format == "json"
    known = {f"RAWWS_{name.upper()}" for name in ServerConfig.__dataclass_fields__}
    assert set(environment) <= known, set(environment) - known
    # The drain plus the shutdown's own wait fit in the stop timeout, so systemd never has to SIGKILL.
    assert config.drain_delay_s + config.shutdown_timeout_s < float(found["TimeoutStopSec"][0])
