"""Stream a long text into a room chunk by chunk, as an application streams an AI model's tokens.

RAWWS_API_KEY=rwk_… python examples/stream_text.py http://127.0.0.1:8765 ROOM [FILE]

Reads FILE (standard input without one), opens a stream in ROOM, appends the text a
few words at a time (the room's members watch it grow), finishes it (it becomes one
message of the room), and prints the stream's id and the message's id. Through
``rawws.api``; the three calls are plain HTTP and JSON (``docs/server-api.md``), so
any language does the same.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys

from rawws.api import ApiClient, ApiError, ApiUnreachable

WORDS_PER_CHUNK = 3
PAUSE_S = 0.05  # a model's pace, roughly


def chunks(text: str, words: int = WORDS_PER_CHUNK) -> list[str]:
    """The text in pieces of a few words, each with the spaces after it: joined, the text."""
    pieces = re.findall(r"\S+\s*|\s+", text)
    return ["".join(pieces[i : i + words]) for i in range(0, len(pieces), words)]


async def stream_text(base: str, key: str, room: str, text: str) -> str:
    """Open, append every chunk, finish (leaving the block finishes it): the line to print."""
    async with ApiClient(base, key) as client, client.stream(room) as stream:
        for piece in chunks(text):
            await stream.append(piece)
            await asyncio.sleep(PAUSE_S)
        finished = await stream.finish()
    return f"stream {stream.id}: message {finished.id} in {finished.room}"


def main() -> None:
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    base, room = sys.argv[1], sys.argv[2]
    key = os.environ.get("RAWWS_API_KEY") or sys.exit("set RAWWS_API_KEY to an API key")
    if len(sys.argv) == 4:
        with open(sys.argv[3], encoding="utf-8") as file:
            text = file.read()
    else:
        text = sys.stdin.read()
    try:
        print(asyncio.run(stream_text(base, key, room, text)))
    except ApiError as error:
        sys.exit(f"{error.status} {error.code}: {error.message}")
    except ApiUnreachable as error:
        sys.exit(str(error))


if __name__ == "__main__":
    main()
