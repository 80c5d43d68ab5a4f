"""The chat's limits per connection and per query, as ``ChatHandler`` enforces them."""

from __future__ import annotations

from dataclasses import dataclass

from rawws.config import (
    DEFAULT_CHAT_MAX_BATCH_MESSAGES,
    DEFAULT_CHAT_MAX_ROOMS_PER_CONNECTION,
    DEFAULT_CHAT_MESSAGE_BURST,
    DEFAULT_CHAT_MESSAGES_PER_S,
    DEFAULT_CHAT_REPLAY_PAGE_MESSAGES,
)

#: What a connection over its frame rate is told (``ChatHandler`` imports these two from here).
RATE_LIMITED_MESSAGE = (
    "slow down: frames are dropped unread until the rate allows; send them again"
)
# shutdown waits this long for replays and history queries to unwind
CLOSE_TASKS_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class ChatLimits:
    """The chat's limits, handed to the handler that enforces them (defaults: ``rawws.config``)."""

    messages_per_s: float = (
        DEFAULT_CHAT_MESSAGES_PER_S  # per connection, with bursts of message_burst
    )
    message_burst: int = DEFAULT_CHAT_MESSAGE_BURST
    max_rooms_per_connection: int = DEFAULT_CHAT_MAX_ROOMS_PER_CONNECTION
    max_batch_messages: int = DEFAULT_CHAT_MAX_BATCH_MESSAGES  # per group commit
    replay_page_messages: int = DEFAULT_CHAT_REPLAY_PAGE_MESSAGES  # per replay query
    # Retention (``--history-max-age``, ``--history-max-messages``; 0: none): a room's owner
    # may keep less, never more.
    history_max_age_s: float = 0.0
    history_max_messages: int = 0
