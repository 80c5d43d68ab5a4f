"""A connection's frame engine is freed by reference counting once the connection has ended.

A server that closes many connections at once would otherwise leave every
one's parser to the collector's full pass, which then stalls the loop. Two
cycles were possible: the step wsproto's parser calls once per frame (it
depends on whether the connection inflates and whether its input is paid from
a budget) kept as a bound method on the decoder, and wsproto's parsing
generator, which holds the protocol that holds it. With the collector off, the
decoder must be gone once its connection has ended and is dropped: by a close
frame, by TCP going away, or by an abort.
"""

from __future__ import annotations

import weakref

import pytest

from rawws.core.budget import ReadBudget
from rawws.core.events import MessageReceived
from rawws.core.extensions import PerMessageDeflate
from rawws.core.frames import LimitedFrameDecoder
from rawws.core.protocol import State, WebSocket
from testkit import masked_frame


def decoder_of(ws: WebSocket) -> LimitedFrameDecoder:
    decoder = ws._frames._decoder  # type: ignore[attr-defined]
    assert isinstance(decoder, LimitedFrameDecoder)
    return decoder


@pytest.mark.parametrize("end", ["close frame", "eof", "abort"])
@pytest.mark.parametrize("inflates", [False, True])
@pytest.mark.parametrize("paid", [False, True])
def test_the_decoder_parses_and_is_freed_without_the_collector(
    end: str, inflates: bool, paid: bool, no_collector: None
) -> None:
    extensions = []
    if inflates:
        extension = PerMessageDeflate(max_message_bytes=1 << 20)
        extension.finalize("permessage-deflate")
        extensions.append(extension)
    ws = WebSocket(client=False, extensions=extensions, max_message_bytes=1 << 20)
    if paid:
        ws.read_budget = ReadBudget(1e6, 1e9, 0.0)
    events = list(ws.receive_data(masked_frame(0x2, b"payload")))
    assert [e.data for e in events if type(e) is MessageReceived] == [b"payload"]
    if end == "close frame":
        events += list(ws.receive_data(masked_frame(0x8, b"\x03\xe8")))
    elif end == "eof":
        events += list(ws.receive_eof())
    else:
        ws.abort()
    assert ws.state is State.CLOSED
    ref = weakref.ref(decoder_of(ws))
    del ws, events
    assert ref() is None, "the decoder is in a reference cycle"
