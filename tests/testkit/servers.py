"""Where the test servers are: PostgreSQL and RabbitMQ, as the environment names them."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url

PG_ADMIN_DSN = os.environ.get(
    "PREPAID_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
AMQP_URL = os.environ.get("PREPAID_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


def postgres_address(dsn: str = PG_ADMIN_DSN) -> tuple[str, int]:
    """Return the host and port a PostgreSQL DSN points at (libpq's defaults where it is silent)."""
    url = make_url(dsn)
    return url.host or "localhost", url.port or 5432


def amqp_address(url: str = AMQP_URL) -> tuple[str, int]:
    """Return the host and port an AMQP URL points at (the scheme's default port where silent)."""
    parts = urlsplit(url)
    return parts.hostname or "localhost", parts.port or (5671 if parts.scheme == "amqps" else 5672)


def postgres_test_url(database: str, admin_dsn: str = PG_ADMIN_DSN) -> str:
    """Return the SQLAlchemy URL of ``database`` on the admin DSN's server, as the DSN's user."""
    url = make_url(admin_dsn).set(drivername="postgresql+asyncpg", database=database)
    return url.render_as_string(hide_password=False)
