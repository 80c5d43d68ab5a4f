"""`rawws api-key` as an operator runs it: a subprocess on a real SQLite data dir, then a
server on that data dir taking (and, once revoked, refusing) the key it printed."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from tests.apps.api import call, error_code
from tests.conftest import StartServer
from tests.support.chat_client import chatting
from tests.support.helpers import rawws

KEY = re.compile(r"rwk_[0-9a-f]{12}_[A-Za-z0-9_-]{43}")


async def test_create_shows_the_key_once_list_never_revoke_refuses_it(
    tmp_path: Path, start_server: StartServer
) -> None:
    data = str(tmp_path / "data")
    code, out, err = await rawws(
        "api-key", "create", "ticker", "--scope", "publish", "--scope", "read",
        "--room", "news", "--per-second", "5", "--burst", "7", "--data-dir", data,
    )  # fmt: skip
    assert code == 0, err
    key = out.strip()
    assert KEY.fullmatch(key) and out == key + "\n"  # the key alone, for KEY=$(…)
    assert "shown this once" in err and key not in err
    code, listed, err = await rawws("api-key", "list", "--data-dir", data)
    assert code == 0, err
    secret = key[-43:]
    assert secret not in listed and key[4:16] in listed
    assert "ticker" in listed and "publish,read" in listed and "rooms=news" in listed
    assert "5/s burst 7" in listed and "live" in listed

    server = await start_server(data_dir=data)
    async with chatting(server, "ann") as (ann,):
        await ann.join("news")
        reply = await call(server, "publish", {"room": "news", "text": "hi"}, key)
        assert reply.status == 200, reply
        code, out, err = await rawws("api-key", "revoke", "ticker", "--data-dir", data)
        assert (code, err) == (0, "") and "ticker revoked" in out

        async def refused() -> bool:
            for _ in range(300):  # each node's cache lasts a second
                reply = await call(
                    server, "publish", {"room": "news", "text": "x"}, key
                )
                if reply.status == 401:
                    return error_code(reply) == "bad_key"
                await asyncio.sleep(0.05)
            return False

        assert await refused()
    code, listed, _ = await rawws("api-key", "list", "--data-dir", data)
    assert "revoked" in listed and secret not in listed


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["create", "x", "--scope", "publish"], "user-name rules"),
        (["create", "ticker"], "at least one --scope"),
        (["create", "ticker", "--scope", "write"], "invalid choice"),
        (["create", "ticker", "--scope", "read", "--room", "A B"], "not a room name"),
        (["create", "ticker", "--scope", "read", "--burst", "0"], "--burst"),
        (["create", "ticker", "--scope", "read", "--per-second", "x"], "--per-second"),
        (["list", "ticker"], "takes no NAME"),
        (["revoke"], "needs a NAME"),
        (["revoke", "nobody"], "no live key named 'nobody'"),
        (["list", "--frobnicate"], "--frobnicate"),
        (["erase"], "invalid choice"),
    ],
)
async def test_every_mistake_is_one_line_and_exit_1(
    tmp_path: Path, args: list[str], says: str
) -> None:
    code, out, err = await rawws("api-key", *args, "--data-dir", str(tmp_path / "d"))
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("rawws: ") and says in err, err
    assert "Traceback" not in err


async def test_a_taken_name_is_one_line(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    code, _, err = await rawws(
        "api-key", "create", "ticker", "--scope", "read", "--data-dir", data
    )
    assert code == 0, err
    code, out, err = await rawws(
        "api-key", "create", "TICKER", "--scope", "read", "--data-dir", data
    )
    assert (code, out) == (
        1,
        "",
    ) and err == "rawws: a key named 'TICKER' exists already\n"
