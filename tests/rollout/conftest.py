"""Fixtures for the rollout tests (helpers live in rollout_support.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from rollout_support import Registry, make_registry

from shipyard.config import Settings


@pytest.fixture
def reg(backend_settings: Settings) -> Iterator[Registry]:
    """Model ``m`` with five versions, on SQLite and on PostgreSQL."""
    made = make_registry(backend_settings)
    yield made
    made.client.close()


@pytest.fixture
def sqlite_reg(settings: Settings) -> Iterator[Registry]:
    """The same registry on SQLite only (server tests)."""
    made = make_registry(settings)
    yield made
    made.client.close()
