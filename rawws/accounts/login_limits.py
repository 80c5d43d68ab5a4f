"""What a password guess is counted against: the (user, address) pair and the address, never the user alone.

A limit per user alone lets anyone lock a user out: eleven wrong guesses from
anywhere and the user's own correct password earns 429 too, for as long as
the guesser keeps going. So a guess counts

* per (user, client address): ``logins_per_minute_per_user`` guesses at one
  account from one address (a /64 for IPv6, ``rawws.core.addresses``);
* per client address: ``logins_per_minute_per_address`` guesses at any
  accounts from one address.

The owner, from an address of their own, is never refused for what others
did. The price: guesses at one account from many addresses are limited per
address only, so a guesser with K addresses gets K times the per-user limit;
what holds them back is argon2's cost per guess, the password rules, and the
bounded hashing queue.

Pure and clocked from outside: the routes pass ``time.monotonic()``, tests any clock.
"""

from __future__ import annotations

from rawws.core.ratelimit import RateLimiter

PERIOD_S = 60.0  # login attempts: a burst of the limit, refilled over this period
USER_AT_ADDRESS = "login-user-address"
ADDRESS = "login-address"


class LoginLimits:
    """The node's own login buckets, and the keys the cluster's shared ones use."""

    def __init__(self, per_user_at_address: int, per_address: int) -> None:
        self.per_user_at_address = per_user_at_address
        self.per_address = per_address
        self._user_at_address = RateLimiter(per_user_at_address, PERIOD_S)
        self._address = RateLimiter(per_address, PERIOD_S)

    def keys(self, user: str, address: str) -> list[tuple[str, str, int]]:
        """``(kind, key, limit)`` of every bucket a guess at ``user`` from ``address`` takes from."""
        return [
            (USER_AT_ADDRESS, f"{len(user)}:{user}{address}", self.per_user_at_address),
            (ADDRESS, address, self.per_address),
        ]

    def acquire(self, user: str, address: str, now: float) -> float:
        """Take a token from both buckets: 0.0 when allowed, else the seconds to wait."""
        return max(
            self._user_at_address.acquire((user, address), now),
            self._address.acquire(address, now),
        )
