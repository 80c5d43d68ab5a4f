"""The bus: how the nodes of one chat reach each other. Transport only: it carries bytes.

``base`` holds the ``Bus`` protocol and the single-node ``LocalBus``; ``redis``
the Redis pub/sub transport; ``seal`` the signature and freshness of every event
on it, so that what a stranger or a replay puts on the channel is refused before
the chat sees it. What travels on it is the chat's
(``rawws.chat.codec``), and how a node copes with what the bus loses is the
chat's too (``rawws.chat.sequencer`` notices gaps, the feed fills them from the
store): the bus itself may lose anything.
"""

from rawws.bus.base import Bus, LocalBus, Receiver

__all__ = ["Bus", "LocalBus", "Receiver"]
