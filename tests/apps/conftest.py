"""Fixtures of the server API's tests: the store tests' own, a store on a real SQLite file and
on the real PostgreSQL (``tests/store/conftest.py``)."""

from tests.store.conftest import store, store_url

__all__ = ["store", "store_url"]
