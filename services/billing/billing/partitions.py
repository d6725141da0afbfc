"""Monthly partitions of ``billing_readings`` on PostgreSQL, and the retention of raw readings.

Readings are partitioned by month of ``read_at`` (UTC months). A DEFAULT partition takes any
reading no monthly partition covers (a clock far off), so an insert never fails. The sweep
creates partitions ahead and drops those entirely older than the retention; the daily
roll-ups in ``billing_daily_usage`` are kept. On SQLite the table is plain and retention is
a DELETE.

Functions take a synchronous connection: the migration calls them directly, the sweep
through ``AsyncConnection.run_sync``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, delete, text

from billing.tables import readings

PARENT = "billing_readings"
DEFAULT_PARTITION = "billing_readings_default"
_MONTHLY = re.compile(r"^billing_readings_p(\d{4})(\d{2})$")
# How many months beyond the current one always have their partition.
MONTHS_AHEAD = 2


def month_start(instant: datetime) -> datetime:
    """The first instant (UTC) of the month holding ``instant``."""
    utc = instant.astimezone(UTC)
    return datetime(utc.year, utc.month, 1, tzinfo=UTC)


def next_month(start: datetime) -> datetime:
    """The first instant of the month after the one starting at ``start``."""
    return datetime(start.year + start.month // 12, start.month % 12 + 1, 1, tzinfo=UTC)


def partition_name(start: datetime) -> str:
    return f"{PARENT}_p{start:%Y%m}"


def existing_partitions(connection: Connection) -> dict[str, datetime | None]:
    """Attached partitions by name, with the month each covers (None for the default)."""
    names = connection.execute(
        text(
            "SELECT c.relname FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent "
            "WHERE p.relname = :parent"
        ),
        {"parent": PARENT},
    ).scalars()
    found: dict[str, datetime | None] = {}
    for name in names:
        match = _MONTHLY.match(name)
        found[name] = (
            datetime(int(match[1]), int(match[2]), 1, tzinfo=UTC) if match is not None else None
        )
    return found


def ensure_month(connection: Connection, start: datetime) -> bool:
    """Create the partition for the month at ``start`` unless it exists; True if created.

    Rows of that month already in the DEFAULT partition are moved into it first (PostgreSQL
    refuses to attach a range the default partition still holds rows for).
    """
    name = partition_name(start)
    if name in existing_partitions(connection):
        return False
    low, high = start.isoformat(), next_month(start).isoformat()
    # Hold inserts that would route to the default partition while its rows move.
    connection.execute(text(f"LOCK TABLE {DEFAULT_PARTITION} IN EXCLUSIVE MODE"))
    connection.execute(text(f"CREATE TABLE {name} (LIKE {PARENT} INCLUDING DEFAULTS)"))
    window = "read_at >= :low AND read_at < :high"
    bounds = {"low": start, "high": next_month(start)}
    connection.execute(
        text(f"INSERT INTO {name} SELECT * FROM {DEFAULT_PARTITION} WHERE {window}"), bounds
    )
    connection.execute(text(f"DELETE FROM {DEFAULT_PARTITION} WHERE {window}"), bounds)
    connection.execute(
        text(
            f"ALTER TABLE {PARENT} ATTACH PARTITION {name} FOR VALUES FROM ('{low}') TO ('{high}')"
        )
    )
    return True


def drop_expired(connection: Connection, cutoff: datetime) -> list[str]:
    """Drop every monthly partition entirely older than ``cutoff``; return their names."""
    dropped = []
    for name, start in sorted(existing_partitions(connection).items()):
        if start is not None and next_month(start) <= cutoff:
            connection.execute(text(f"DROP TABLE {name}"))
            dropped.append(name)
    # Rows that fell into the default partition expire by the same rule.
    connection.execute(
        text(f"DELETE FROM {DEFAULT_PARTITION} WHERE read_at < :cutoff"), {"cutoff": cutoff}
    )
    return dropped


def maintain(connection: Connection, *, now: datetime, retention_days: int) -> list[str]:
    """Create this month's and the next months' partitions, drop expired ones.

    Returns the names of the partitions dropped. On SQLite, deletes expired rows instead.
    """
    cutoff = now - timedelta(days=retention_days)
    if connection.dialect.name != "postgresql":
        connection.execute(delete(readings).where(readings.c.read_at < cutoff))
        return []
    start = month_start(now)
    for _ in range(MONTHS_AHEAD + 1):
        ensure_month(connection, start)
        start = next_month(start)
    return drop_expired(connection, cutoff)
