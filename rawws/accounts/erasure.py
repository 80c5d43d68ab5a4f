"""`POST /auth/erase`: a user deletes their own account (``rawws.store.erasure`` says what goes).

It needs the access token (``Authorization: Bearer``) and the current password, checked off
the loop and rate limited as a login and a password change are, so a stolen access token
alone erases nothing: 401 for a wrong password (and nothing changes), 403 for a user with no
password here (an outside provider's). Then every message of theirs is redacted as a
deletion by them; the ``deleted`` events go to ``Accounts.on_erased`` (the chat delivers them
here and publishes them on the bus, in order), and the stamp to the ``StopBook``: every
connection of theirs closes (1008), here at once and on the other nodes when they hear.
The name stays taken for ``QUARANTINE_S`` (``rawws.store.erasure``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from rawws.core.addresses import peer_limit_key
from rawws.core.http import Request, Response, json_response
from rawws.errors import HttpError
from rawws.store.names import username_key

if TYPE_CHECKING:
    from rawws.accounts.routes import Accounts

log = logging.getLogger("rawws.accounts")


async def erase_account(accounts: Accounts, request: Request) -> Response:
    """The handler of `POST /auth/erase` (``{"password"}`` → ``{"erased": true, "messages": N}``)."""
    from rawws.accounts.routes import BAD_CREDENTIALS, read_json_object

    identity = accounts._verified(request)
    password = read_json_object(request).get("password")
    if not isinstance(password, str):
        raise HttpError(400, "password is a required string")
    await accounts._rate_limit(
        username_key(identity.user), peer_limit_key(request.peer)
    )
    user = await accounts._stored("erase", accounts.store.get_user(identity.user))
    if user is None:  # e.g. an outside provider's user: no account here to erase
        raise HttpError(403, "this account has no password here")
    if not await accounts._off_loop(
        request, user.username, accounts.passwords.verify, user.password_hash, password
    ):
        raise HttpError(401, BAD_CREDENTIALS)
    # Their own erasure: each message is deleted by its author, as a `delete` of theirs is.
    stamp, events = await accounts._stored(
        "erase",
        accounts.store.erase_user(
            user.username, user.username, accounts.tokens.clock()
        ),
    )
    if stamp is not None and accounts.stops is not None:
        accounts.stops.stamped(stamp)  # their connections close, here and on every node
    if accounts.on_erased is not None:
        accounts.on_erased(events)
    log.info("account erased id=%d; %d message(s) redacted", user.id, len(events))
    return json_response(
        200,
        {"erased": stamp is not None, "messages": len(events)},
        [("Cache-Control", "no-store")],
    )
