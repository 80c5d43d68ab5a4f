"""deploy/rawws.service: accepted by systemd-analyze verify, with the hardening it promises."""

from __future__ import annotations

import sys
from pathlib import Path

from rawws.config import ServerConfig, from_env
from tests.support.systemd import INSTALL_PREFIX, REPO_ROOT, UNIT, directives, verify


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    # The unit as shipped, with the venv it runs from (/opt/rawws) being this environment's (verify checks
    # that ExecStart exists; tests/e2e/test_wheel.py does the same with a venv the wheel was installed into).
    assert Path(sys.prefix, "bin", "rawws").exists(), (
        "the rawws script of this environment"
    )
    unit = tmp_path / "rawws.service"
    unit.write_text(UNIT.read_text().replace(INSTALL_PREFIX, sys.prefix))
    verify(unit)


def test_the_unit_and_the_docs_install_the_same_way() -> None:
    """The unit runs the venv the docs install into, and the docs install the unit the way its header says."""
    unit = UNIT.read_text()
    found = directives(unit)
    assert found["ExecStart"] == [f"{INSTALL_PREFIX}/bin/rawws serve"]
    assert found["Documentation"] == [
        f"file://{INSTALL_PREFIX}/share/doc/rawws/deploying.md"
    ]
    guide = (REPO_ROOT / "docs" / "deploying.md").read_text()
    assert f"python3 -m venv {INSTALL_PREFIX}\n" in guide
    install_line = f"install -m 644 {INSTALL_PREFIX}/share/rawws/rawws.service /etc/systemd/system/rawws.service"
    assert install_line in guide and f"#   {install_line}\n" in unit
    assert "@.service" not in unit  # it is no template


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
    assert (
        config.data_dir == "/var/lib/rawws"
        and config.metrics_port == 9101
        and config.drain_delay_s == 5
    )
    assert config.forwarded_allow_ips == ("127.0.0.1",) and config.log_format == "json"
    known = {f"RAWWS_{name.upper()}" for name in ServerConfig.__dataclass_fields__}
    assert set(environment) <= known, set(environment) - known
    # The drain plus the shutdown's own wait fit in the stop timeout, so systemd never has to SIGKILL.
    assert config.drain_delay_s + config.shutdown_timeout_s < float(
        found["TimeoutStopSec"][0]
    )
