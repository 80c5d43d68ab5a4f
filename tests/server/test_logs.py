"""`rawws serve` log lines as an operator reads them: text or JSON per line, structured ws lines, never a secret."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from rawws.cli import logs
from tests.support.chat_client import ChatClient
from tests.support.helpers import PASSWORD, http, register, registered_token, ticket
from tests.support.nodes import start_node

SECRET_PASSWORD = "S3cret-horse-battery-staple"


async def chat_session(port: int) -> list[str]:
    """Register, log in, buy a ticket, open /ws with it in the query, join, say, close; the secrets used."""
    token = await registered_token(port, "ada", PASSWORD)
    assert (await register(port, "bob", SECRET_PASSWORD)).status == 201
    wrong = await http(
        port,
        "POST",
        "/auth/login",
        {"username": "bob", "password": SECRET_PASSWORD + "x"},
    )
    assert wrong.status == 401
    reply = await ticket(port, token)
    assert reply.status == 200
    single_use = reply.json["ticket"]
    ws = await connect(
        f"ws://127.0.0.1:{port}/ws?ticket={single_use}",
        proxy=None,
        subprotocols=["rawws.v1"],
    )
    client = ChatClient(ws, "ada")
    await client.wait_frame("welcome")
    await client.join("lobby")
    await client.say("lobby", "hello", ref="r1")
    await client.wait_ack("r1")
    await client.close()
    return [PASSWORD, SECRET_PASSWORD, token, single_use, f"ticket={single_use}"]


def assert_no_secret(text: str, secrets: list[str]) -> None:
    for secret in secrets:
        assert secret not in text, f"a secret reached the log: {secret[:12]}…"


async def test_json_log_lines(tmp_path: Path) -> None:
    node = await start_node(tmp_path, "--log-format", "json", "--log-level", "DEBUG")
    try:
        secrets = await chat_session(node.port)
    finally:
        assert await node.stop() == 0
    text = node.log()
    assert_no_secret(text, secrets)
    records = [
        json.loads(line) for line in text.splitlines()
    ]  # every line is one JSON object
    assert records
    for record in records:
        assert {"time", "level", "logger", "message"} <= set(record), record
        assert record["time"].endswith("+00:00")
    opens = [r for r in records if r["message"].startswith("ws open ")]
    closes = [r for r in records if r["message"].startswith("ws close ")]
    assert len(opens) == 1 and len(closes) == 1, (opens, closes)
    assert (
        opens[0]["path"] == "/ws"
        and opens[0]["user"] == "ada"
        and opens[0]["peer"].startswith("127.0.0.1:")
    )
    close = closes[0]
    assert close["code"] == 1000 and close["path"] == "/ws" and close["user"] == "ada"
    assert isinstance(close["duration_s"], float) and close["duration_s"] >= 0
    assert close["level"] == "INFO" and close["logger"] == "rawws.server"


async def test_text_log_lines(tmp_path: Path) -> None:
    node = await start_node(
        tmp_path, "--log-level", "DEBUG", env={"RAWWS_LOG_FORMAT": "text"}
    )
    try:
        secrets = await chat_session(node.port)
    finally:
        assert await node.stop() == 0
    text = node.log()
    assert_no_secret(text, secrets)
    closes = [line for line in text.splitlines() if " ws close " in line]
    assert (
        len(closes) == 1
        and "path=/ws code=1000" in closes[0]
        and "user=ada" in closes[0]
    ), closes


async def test_log_format_from_the_environment(tmp_path: Path) -> None:
    node = await start_node(tmp_path, env={"RAWWS_LOG_FORMAT": "json"})
    assert await node.stop() == 0
    assert all(json.loads(line)["logger"] for line in node.log().splitlines())


@pytest.fixture
def root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_queued_logging_formats_and_writes_in_another_thread(
    root_logging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    threads: list[str] = []
    original = logs.JsonFormatter.format

    def spy(self: logs.JsonFormatter, record: logging.LogRecord) -> str:
        threads.append(threading.current_thread().name)
        return original(self, record)

    monkeypatch.setattr(logs.JsonFormatter, "format", spy)
    stop = logs.configure_logging("INFO", "json", queued=True)
    items = ["a"]
    logging.getLogger("rawws.test").info(
        "items=%s", items, extra={"peer": "198.51.100.1:5", "secret": "no"}
    )
    items.append("b")  # changed after the call: the line shows what was logged
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("rawws.test").exception("failed")
    stop()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[0]["message"] == "items=['a']" and lines[0]["peer"] == "198.51.100.1:5"
    assert "secret" not in lines[0]  # only the known structured fields
    assert (
        lines[1]["level"] == "ERROR" and "RuntimeError: boom" in lines[1]["exception"]
    )
    assert threads and threading.main_thread().name not in threads


def test_unknown_log_format_is_refused() -> None:
    with pytest.raises(ValueError, match="log format"):
        logs.configure_logging("INFO", "xml")
