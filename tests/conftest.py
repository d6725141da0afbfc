"""Fixtures shared by every tier: databases and buses on both backends.

PostgreSQL and RabbitMQ tests are skipped with the reason when the servers cannot be
reached at the addresses PREPAID_TEST_PG_DSN and PREPAID_TEST_AMQP_URL name, except under CI
(``CI=true``), where an unreachable server is a failure.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from testkit.servers import (
    AMQP_URL,
    PG_ADMIN_DSN,
    amqp_address,
    postgres_address,
    postgres_test_url,
)

# A test about to time out prints what each asyncio task waits on.
pytest_plugins = ["testkit.hang_report"]

IN_CI = os.environ.get("CI", "").lower() == "true"

# Tests build settings with the development defaults (and the processes they start inherit
# this); a process started without PREPAID_ENVIRONMENT is production and refuses them.
os.environ.setdefault("PREPAID_ENVIRONMENT", "development")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_server(name: str, host: str, port: int) -> None:
    """Skip (locally) or fail (in CI) when a server the test needs is down."""
    if _reachable(host, port):
        return
    message = f"{name} is not reachable on {host}:{port}"
    if IN_CI:
        pytest.fail(f"{message} (CI must start it)")
    pytest.skip(message)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'prepaid.db'}"


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    require_server("PostgreSQL", *postgres_address())
    import asyncpg

    name = f"prepaid_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield postgres_test_url(name)
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
def amqp_url() -> str:
    require_server("RabbitMQ", *amqp_address())
    return AMQP_URL


@pytest.fixture
def bus_prefix() -> str:
    """A private exchange/queue namespace so tests never see each other's messages."""
    return f"test-{uuid.uuid4().hex[:10]}"


@pytest.fixture(params=["sqlite-inprocess", "postgres-rabbitmq"])
def backend(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(database URL, AMQP URL or "") for each of the two ways to run."""
    if request.param == "sqlite-inprocess":
        return request.getfixturevalue("sqlite_url"), ""
    return request.getfixturevalue("postgres_url"), request.getfixturevalue("amqp_url")
