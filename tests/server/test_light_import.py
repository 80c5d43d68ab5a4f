"""What a library server costs to import: cryptography only once TLS files are configured.

cryptography's x509 and serialization are 14 MB of RSS, a third of an idle
``rawws.serve`` process (bench/LIMITS.md, "Memory in fan-out bursts"); they
check the TLS files, so they are imported when there are some to check.
Each test runs a fresh interpreter: this one has imported everything already.
"""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
import rawws
rawws.serve, rawws.broadcast, rawws.ServerConnection
print(sorted({name.split(".")[0] for name in sys.modules} & {"cryptography", "sqlalchemy", "redis", "jwt"}))
"""

TLS_PROBE = """
import sys
from rawws.errors import SettingError
from rawws.server.listening import server_ssl_context
try:
    server_ssl_context("/nonexistent/cert.pem", "/nonexistent/key.pem")
except SettingError as error:
    print(error.setting, "cryptography" in sys.modules)
"""


def run(code: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()


def test_the_library_server_imports_no_tls_parser_store_or_bus() -> None:
    assert run(PROBE) == "[]"


def test_checking_tls_files_imports_cryptography_then() -> None:
    assert run(TLS_PROBE) == "tls_cert True"
