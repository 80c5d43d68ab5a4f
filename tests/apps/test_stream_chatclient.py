"""``rawws chat`` and streamed messages: it shows no ``stream`` frame (a chunk, or the text so
far) and prints the finished message once, like any message (frames in, lines out, no I/O)."""

from __future__ import annotations

from rawws.chatclient.state import ChatState
from tests.e2e.test_chat_cli import frame, shown


def test_stream_frames_are_skipped_and_the_final_message_is_printed_once() -> None:
    state = ChatState("talk")
    state.on_connected()
    shown(state, frame("welcome", user="ann", rooms=["talk"]))
    shown(state, frame("joined", room="talk", users=["ann"], last_id=0))
    shown(state, frame("history", room="talk", messages=[]))
    chunk = {"room": "talk", "stream": "s1", "user": "oracle", "app": True}
    assert shown(state, frame("stream", seq=1, text="Hel", **chunk)) == []
    assert shown(state, frame("stream", seq=2, text="Hello", whole=True, **chunk)) == []
    final = frame(
        "message",
        room="talk",
        id=1,
        user="oracle",
        text="Hello, world",
        ts=0,
        app=True,
        stream="s1",
    )
    lines = shown(state, final)
    assert len(lines) == 1 and "oracle" in lines[0] and "Hello, world" in lines[0]
    assert shown(state, final) == []  # a repeat of an id is not printed twice
