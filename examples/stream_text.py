"""Stream a long text into a room chunk by chunk, as an application streams an AI model's tokens.

RAWWS_API_KEY=rwk_… python examples/stream_text.py http://127.0.0.1:8765 ROOM [FILE]

Reads FILE (standard input without one), opens a stream in ROOM, appends the text a
few words at a time (the room's members watch it grow), finishes it (it becomes one
message of the room), and prints the stream's id and the message's id. Plain HTTP and
JSON through the standard library: any language does the same three calls.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import urllib.error
import urllib.request

WORDS_PER_CHUNK = 3
PAUSE_S = 0.05  # a model's pace, roughly


def call(base: str, key: str, name: str, **body: object) -> dict[str, object]:
    """``POST /api/v1/<name>``: the answer, or the server's error said in one line."""
    request = urllib.request.Request(
        f"{base.rstrip('/')}/api/v1/{name}",
        data=json.dumps(body).encode("utf-8"),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            answer: dict[str, object] = json.load(response)
            return answer
    except urllib.error.HTTPError as error:
        detail = json.load(error).get("error", {})
        sys.exit(f"{name}: {error.code} {detail.get('code')}: {detail.get('message')}")


def chunks(text: str, words: int = WORDS_PER_CHUNK) -> list[str]:
    """The text in pieces of a few words, each with the spaces after it: joined, the text."""
    pieces = re.findall(r"\S+\s*|\s+", text)
    return ["".join(pieces[i : i + words]) for i in range(0, len(pieces), words)]


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
    stream = call(base, key, "stream_open", room=room)["stream"]
    for piece in chunks(text):
        call(base, key, "stream_append", stream=stream, text=piece)
        time.sleep(PAUSE_S)
    finished = call(base, key, "stream_finish", stream=stream)
    print(f"stream {stream}: message {finished['id']} in {finished['room']}")


if __name__ == "__main__":
    main()
