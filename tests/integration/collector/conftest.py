"""Fixtures of the collector's integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from testkit.collector import Collector, running_collector


@pytest.fixture
async def collector(sqlite_url: str) -> AsyncIterator[Collector]:
    """A collector on SQLite with the in-process bus, no listener."""
    async with running_collector(sqlite_url) as running:
        yield running
