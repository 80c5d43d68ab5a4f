"""The two profiles: a short one CI runs in about a minute, a long one for a release."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    clients: int  # chatting clients, each in two of the rooms
    rooms: int
    duration_s: float  # of the load; the checks run after it
    say_interval_s: float  # per client (the server allows 10 frames/s per connection)
    flooders: int  # big-message senders into the slow reader's room
    slowloris: int  # sockets trickling a request head
    silent: int  # sockets that connect and send nothing
    hostile_per_s: int  # malformed frames/JSON per second, under the load
    sigterm_at: float  # fractions of the duration
    sigkill_at: float
    outage_at: float  # PostgreSQL only
    outage_s: float


PROFILES = {
    "short": Profile("short", 20, 4, 50.0, 0.5, 16, 10, 10, 20, 0.5, 0.7, 0.85, 3.0),
    "long": Profile("long", 100, 10, 600.0, 0.5, 16, 50, 50, 50, 0.3, 0.6, 0.8, 15.0),
}
