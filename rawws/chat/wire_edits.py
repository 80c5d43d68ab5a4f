"""The edit and delete part of the wire protocol (``rawws.chat.wire`` re-exports all of it): the
commands ``edit`` and ``delete``, the ``edited`` and ``deleted`` frames of their events, and the
fields a message frame gets once edited or deleted. A module of its own so ``wire`` stays short.

``edited {room, id, message, text, user, ts}`` and ``deleted {room, id, message, user, ts}``:
``id`` is the event's own place in the room's sequence (so ``since`` covers it), ``message``
the id of the message it changes, ``user`` who changed it.
"""

from __future__ import annotations

from dataclasses import dataclass

from rawws.chat.wire_moderation import event_fields
from rawws.store.base import EDITED, StoredMessage

#: An edit or deletion of an id that is no message of the room (any more).
NOT_FOUND = "not_found"


@dataclass(frozen=True, slots=True)
class Edit:
    room: str
    id: int  # the message's
    text: str
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class Delete:
    room: str
    id: int  # the message's
    ref: str | None = None


MessageChange = Edit | Delete


def any_event_fields(stored: StoredMessage) -> dict[str, object]:
    """The object of a stored event that is no message: an edit's or deletion's (``about``
    names its message), else a membership event's (``member``, ``wire_moderation``)."""
    return event_fields(stored) if stored.about is None else change_fields(stored)


def change_fields(stored: StoredMessage) -> dict[str, object]:
    """The ``edited`` or ``deleted`` object of one stored change event (live or replayed)."""
    fields: dict[str, object] = {
        "type": stored.kind,
        "room": stored.room,
        "id": stored.id,
        "message": stored.about,
    }
    if stored.kind == EDITED:
        fields["text"] = stored.text
    fields["user"] = stored.user
    fields["ts"] = stored.ts
    return fields


def message_change(
    room: str, message_id: int, text: str | None, ref: str | None
) -> MessageChange:
    """``edit`` (with its new ``text``) or ``delete`` (``text`` None) of message ``message_id``."""
    if text is None:
        return Delete(room, message_id, ref)
    return Edit(room, message_id, text, ref)


def add_state(fields: dict[str, object], stored: StoredMessage) -> dict[str, object]:
    """A message frame's ``edited_at`` once edited, and ``deleted``, ``deleted_by``,
    ``deleted_at`` once deleted (its text is then ""): ``fields``, completed."""
    if stored.edited_at is not None:
        fields["edited_at"] = stored.edited_at
    if stored.deleted_at is not None:
        fields["deleted"] = True
        fields["deleted_by"] = stored.deleted_by
        fields["deleted_at"] = stored.deleted_at
    return fields
