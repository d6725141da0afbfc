"""The test servers are found where PREPAID_TEST_PG_DSN and PREPAID_TEST_AMQP_URL say."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import make_url
from testkit.servers import amqp_address, postgres_address, postgres_test_url


@pytest.mark.parametrize(
    ("dsn", "address"),
    [
        ("postgresql://postgres@127.0.0.1:5432/postgres", ("127.0.0.1", 5432)),
        ("postgresql://app:secret@db.internal:6543/admin", ("db.internal", 6543)),
        ("postgresql://postgres@pg/postgres", ("pg", 5432)),
    ],
)
def test_postgres_address_comes_from_the_dsn(dsn: str, address: tuple[str, int]) -> None:
    assert postgres_address(dsn) == address


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("amqp://guest:guest@127.0.0.1:5672/", ("127.0.0.1", 5672)),
        ("amqp://u:p@rabbit:5673/vhost", ("rabbit", 5673)),
        ("amqp://u:p@rabbit/", ("rabbit", 5672)),
        ("amqps://u:p@rabbit/", ("rabbit", 5671)),
    ],
)
def test_amqp_address_comes_from_the_url(url: str, address: tuple[str, int]) -> None:
    assert amqp_address(url) == address


def test_the_test_database_lives_on_the_dsns_server_as_its_user() -> None:
    url = make_url(postgres_test_url("prepaid_test_1", "postgresql://app:s3cret@db:6543/admin"))
    assert url.drivername == "postgresql+asyncpg"
    assert (url.username, url.password, url.host, url.port) == ("app", "s3cret", "db", 6543)
    assert url.database == "prepaid_test_1"
