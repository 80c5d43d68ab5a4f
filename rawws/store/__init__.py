"""Persistence behind a small protocol: SQLite by default, PostgreSQL by URL.

The server talks to a ``Store``; which database sits behind it is a URL.
"""

from __future__ import annotations

from rawws.errors import UsernameTaken
from rawws.store.base import NewMessage, Store, StoredMessage, User
from rawws.store.opening import open_store
from rawws.store.sql import SqlStore, sqlite_url

__all__ = [
    "NewMessage",
    "SqlStore",
    "Store",
    "StoredMessage",
    "User",
    "UsernameTaken",
    "open_store",
    "sqlite_url",
]
