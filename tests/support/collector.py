"""The cyclic garbage collector off for a test: what reference counting does not free stays, and shows."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest


@pytest.fixture
def no_collector() -> Iterator[None]:
    """The collector off for the test (only reference counting frees objects), then back as it was."""
    gc.collect()  # what earlier tests left does not run into this one
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
