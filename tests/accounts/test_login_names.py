"""The per-user login limit counts a user under the same normalisation that finds the user.

A login is looked up by NFKC + case folding (``rawws.store.names.username_key``),
so ``ｋａｔｅ`` (fullwidth) signs in as ``kate``; the limit must count it as
``kate`` too, or each spelling would get a limit of its own.
"""

from __future__ import annotations

from tests.support.helpers import login, register


async def test_spellings_of_one_name_share_its_login_limit(start_server) -> None:
    server = await start_server(logins_per_minute_per_user=3)
    assert (await register(server.port, "kate")).status == 201
    for spelling in ("kate", "KATE", "ｋａｔｅ"):
        assert (await login(server.port, spelling, "wrong-password")).status == 401
    assert (await login(server.port, "ｋａｔｅ", "wrong-password")).status == 429
    assert (await login(server.port, "\u212aate", "wrong-password")).status == 429
