"""websockets checking a PyJWT bearer token in ``process_request``, then sending a welcome: the chat's handshake.

The peer for rawws's authenticated chat handshake, written the way websockets'
authentication guide shows (a ``process_request`` hook that answers 401 before
the upgrade). The token is HS256 with the claims rawws issues, checked with
the same ``jwt.decode`` options (audience, issuer, required claims). The
secret comes from ``RAWWS_BENCH_JWT_SECRET``.
"""

from __future__ import annotations

import argparse
import http
import json
import os

import jwt
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from bench.servers._common import MAX_MESSAGE_BYTES, run, wait_for_signal

SECRET = os.environ.get(
    "RAWWS_BENCH_JWT_SECRET", "bench secret that is at least 32 bytes long"
).encode()
REQUIRED_CLAIMS = ["exp", "iat", "sub", "iss", "aud"]


def process_request(connection: ServerConnection, request: Request) -> Response | None:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        return connection.respond(http.HTTPStatus.UNAUTHORIZED, "a token is required\n")
    try:
        claims = jwt.decode(
            header[7:],
            SECRET,
            algorithms=["HS256"],
            audience="rawws",
            issuer="rawws",
            options={"require": REQUIRED_CLAIMS},
        )
    except jwt.PyJWTError:
        return connection.respond(http.HTTPStatus.UNAUTHORIZED, "invalid token\n")
    connection.user = claims["sub"]  # type: ignore[attr-defined]
    return None


async def handler(ws: ServerConnection) -> None:
    user = getattr(ws, "user", "-")
    await ws.send(
        json.dumps(
            {"type": "welcome", "user": user, "rooms": ["lobby"]}, separators=(",", ":")
        )
    )
    async for _ in ws:
        pass


async def main(args: argparse.Namespace) -> None:
    async with serve(
        handler,
        args.host,
        args.port,
        process_request=process_request,
        compression=None,
        max_size=MAX_MESSAGE_BYTES,
    ):
        await wait_for_signal()


if __name__ == "__main__":
    run(main, __doc__)
