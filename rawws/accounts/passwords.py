"""Password rules and argon2id hashing (RFC 9106). Hashing is slow on purpose: callers run it off the event loop."""

from __future__ import annotations

import re

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from rawws.config import (
    DEFAULT_ARGON2_MEMORY_KIB,
    DEFAULT_ARGON2_PARALLELISM,
    DEFAULT_ARGON2_TIME_COST,
)
from rawws.errors import HttpError

USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{2,31}")
MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = (
    256  # argon2 takes any length; this bounds the work a request can ask for
)


def check_username(username: object) -> str:
    if not isinstance(username, str) or USERNAME.fullmatch(username) is None:
        raise HttpError(
            400,
            "username must be 3-32 characters: letters, digits, '_', '.', '-', starting with a letter or digit",
        )
    return username


def check_password(password: object, username: str) -> str:
    if not isinstance(password, str):
        raise HttpError(400, "password must be a string")
    if len(password) < MIN_PASSWORD_CHARS:
        raise HttpError(
            400, f"password must have at least {MIN_PASSWORD_CHARS} characters"
        )
    if len(password) > MAX_PASSWORD_CHARS:
        raise HttpError(
            400, f"password must have at most {MAX_PASSWORD_CHARS} characters"
        )
    if password.lower() == username.lower() or len(set(password)) < 4:
        raise HttpError(400, "password is too easy to guess")
    return password


class Passwords:
    """argon2id hashes with settings that can be raised later: old hashes are upgraded on login."""

    def __init__(
        self,
        time_cost: int = DEFAULT_ARGON2_TIME_COST,
        memory_kib: int = DEFAULT_ARGON2_MEMORY_KIB,
        parallelism: int = DEFAULT_ARGON2_PARALLELISM,
    ) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism
        )
        # Verified when a user does not exist, so that case costs the same time.
        self._decoy = self._hasher.hash("rawws decoy password")

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        try:
            return (
                self._hasher.verify(password_hash or self._decoy, password)
                and password_hash is not None
            )
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)
