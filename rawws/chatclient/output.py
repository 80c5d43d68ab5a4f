"""What one event makes `rawws chat` do (``Output``): frames to send, lines to show. No I/O."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Output:
    """What one event makes the client do: frames to send, lines to show.

    ``resend``: says the server did not store, sent again before whatever else is
    still waiting to go, so the lines keep the order they were typed in.
    ``throttled``: the server dropped frames for their rate (its bucket is
    emptier than ours thought): the edge waits for a token before the next.
    """

    send: list[str] = field(default_factory=list)
    show: list[str] = field(default_factory=list)
    resend: list[str] = field(default_factory=list)
    throttled: bool = False
