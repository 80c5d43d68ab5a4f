"""The bus: how the nodes of one chat see each other's stored messages.

A node publishes every message after its commit; every node delivers what it
receives to its own members, in id order, exactly once. The bus itself may
lose anything (Redis pub/sub is fire-and-forget): ``sequencer`` notices the
gaps and the node fills them from the shared store.
"""

from rawws.bus.base import Bus, BusEvent, Heads, LocalBus, Posted, Presence, decode_event, encode_event
from rawws.bus.sequencer import RoomSequencer

__all__ = ["Bus", "BusEvent", "Heads", "LocalBus", "Posted", "Presence", "RoomSequencer", "decode_event", "encode_event"]
