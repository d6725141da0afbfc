"""Database plumbing: one async engine per process, exact column types, migrations."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
import weakref
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import BigInteger, DateTime, Dialect, event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.ext.asyncio import AsyncSession as AsyncSession
from sqlalchemy.types import TypeDecorator

# Seconds to open a connection to PostgreSQL before it counts as unreachable.
CONNECT_TIMEOUT_SECONDS = 10
# A pooled connection idle longer than this is pinged before it is handed out.
PING_AFTER_IDLE_SECONDS = 1.0


def create_engine(url: str) -> AsyncEngine:
    """Create the process's engine; on SQLite make the file and serialise writers safely."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        # A server that does not answer fails a connection in seconds (asyncpg waits a
        # minute): a consumer backs off and retries, an API answers 503, neither hangs.
        connect_args = (
            {"timeout": CONNECT_TIMEOUT_SECONDS} if parsed.drivername.endswith("asyncpg") else {}
        )
        server = create_async_engine(url, pool_size=10, max_overflow=10, connect_args=connect_args)
        _ping_when_idle(server)
        return server
    if parsed.database and parsed.database != ":memory:":
        _create_private_file(Path(parsed.database))
    engine = create_async_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, issue BEGIN, so that we can make it IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # IMMEDIATE takes the write lock up front: two deferred transactions that both
        # upgrade to writers would otherwise fail with SQLITE_BUSY instead of waiting.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _ping_when_idle(engine: AsyncEngine) -> None:
    """Check a pooled connection before use when it may have died unseen: pinged if it sat
    idle for more than PING_AFTER_IDLE_SECONDS, replaced if its socket is closed.

    ``pool_pre_ping`` pinged at every checkout, three round trips (BEGIN, ';', ROLLBACK)
    before each transaction: a collector writing readings and relaying them takes a few
    connections per batch, and the pings cost it more than a batch's own statements
    (docs/benchmarks.md). A connection in steady use is not pinged; one the server closed
    (a restart, a terminated backend) shows closed once the event loop has read the close,
    and one idle for a while, which a dropped network could have cut silently, is pinged
    as before. A failed ping raises DisconnectionError: the pool replaces the connection.
    """
    pool = engine.sync_engine.pool

    @event.listens_for(pool, "checkin")
    def _idle_from(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _check(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        driver = getattr(dbapi_connection, "driver_connection", None)
        closed = driver is not None and driver.is_closed()
        if (
            not closed
            and idle_since is not None
            and time.monotonic() - idle_since <= PING_AFTER_IDLE_SECONDS
        ):
            return
        try:
            if closed:
                raise ConnectionError("the connection is closed")
            dbapi_connection.ping()
        except Exception as error:
            raise DisconnectionError(f"pooled connection unusable: {error}") from error


def _create_private_file(path: Path) -> None:
    """Create the SQLite file readable by its owner only; SQLite gives its WAL the same mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_CREAT with 0600 leaves no moment at which the file is readable by others.
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    path.chmod(0o600)  # a file made earlier with the umask's wider mode is narrowed too


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Return the session factory used by units of work."""
    return async_sessionmaker(engine, expire_on_commit=False)


class ScaledDecimal(TypeDecorator[Decimal]):
    """An exact decimal stored as an integer count of 10**-scale units.

    Integers sum exactly on every backend (SQLite has no exact decimal type). A value with
    more decimal places than the scale is refused, never rounded silently.
    """

    impl = BigInteger
    cache_ok = True

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = scale
        self._unit = Decimal(1).scaleb(-scale)

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> int | None:
        if value is None:
            return None
        if not isinstance(value, Decimal):
            raise TypeError(f"expected Decimal, got {type(value).__name__}")
        scaled = value.scaleb(self.scale)
        if scaled != scaled.to_integral_value():
            raise ValueError(f"{value} has more than {self.scale} decimal places")
        return int(scaled)

    def process_result_value(self, value: int | None, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return (Decimal(value) * self._unit).quantize(self._unit)


def Money() -> ScaledDecimal:  # noqa: N802 - reads as a column type
    """Yuan with two decimals (stored as fen)."""
    return ScaledDecimal(2)


def Energy() -> ScaledDecimal:  # noqa: N802 - reads as a column type
    """kWh with three decimals (stored as Wh)."""
    return ScaledDecimal(3)


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: use timezone-aware UTC times")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


async def upgrade_schema(engine: AsyncEngine, migrations_dir: Path, version_table: str) -> None:
    """Bring one service's tables to the newest revisions (``alembic upgrade heads``).

    Heads, not head: revisions written side by side on separate branches apply together until
    a merge revision joins them.
    """
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    config.attributes["version_table"] = version_table

    def run(connection: Connection) -> None:
        config.attributes["connection"] = connection
        command.upgrade(config, "heads")

    # Alembic keeps its migration context in module globals: one migration per process at
    # a time, whatever the event loop does.
    async with _process_migration_lock(), engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Replicas starting together would race to create the same tables: one at a time.
            await connection.exec_driver_sql(
                f"SELECT pg_advisory_xact_lock({_lock_key(version_table)})"
            )
        await connection.run_sync(run)


_MIGRATION_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def _process_migration_lock() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    lock = _MIGRATION_LOCKS.get(loop)
    if lock is None:
        lock = _MIGRATION_LOCKS[loop] = asyncio.Lock()
    return lock


def _lock_key(name: str) -> int:
    """A stable signed 63-bit advisory lock key for a name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") >> 1


def run_migrations_in_env(target_metadata: Any) -> None:
    """Body of each service's Alembic ``env.py``: migrate on the connection handed in."""
    from alembic import context

    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through prepaid_common.db.upgrade_schema")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=context.config.attributes["version_table"],
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
