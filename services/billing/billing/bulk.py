"""Set-at-a-time writes for a batch of readings and postings.

On PostgreSQL each write is ONE statement over arrays (``unnest``): the server runs one
plan instead of a thousand, and the driver encodes whole columns at once (a column with one
value for the whole batch, such as its receipt instant, as that one value). Elsewhere
(SQLite) the same writes are SQLAlchemy executemany calls. Values go through the columns'
own types first (``ScaledDecimal`` refuses a sub-unit amount), so both paths store the
same integers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from prepaid_common.db import ScaledDecimal
from sqlalchemy import ColumnElement, Table, any_, bindparam, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnClause
from sqlalchemy.types import String, Text

from billing.tables import balances, daily_usage, entries, meters, readings, transactions


def _is_postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def one_of(session: AsyncSession, column: ColumnClause[str], values: Sequence[str]) -> Any:
    """``column IN values``; on PostgreSQL as ``= ANY(array)`` so that the statement text,
    and so the driver's prepared statement, stays the same whatever the batch size."""
    if not _is_postgres(session):
        return column.in_(values)
    condition: ColumnElement[bool] = column == any_(
        bindparam(None, list(values), type_=postgresql.ARRAY(String()))
    )
    return condition


def _stored(column: Any, values: Sequence[Any]) -> list[Any]:
    """Values as the column stores them (integers for scaled decimals, UTC timestamps;
    no column: as given)."""
    if column is None:
        return list(values)
    kind = column.type
    if isinstance(kind, ScaledDecimal):
        return in_units(values, kind.scale)
    bind = getattr(kind, "process_bind_param", None)
    if bind is None:
        return list(values)
    return [bind(value, None) for value in values]


def in_units(values: Sequence[Decimal | None], scale: int) -> list[int | None]:
    """Return each value as ``ScaledDecimal(scale)`` stores it: its count of 10**-scale units.

    The column type's own rule in one loop (a test holds the two equal); a value with more
    decimal places is refused.
    """
    units: list[int | None] = []
    append = units.append
    for value in values:
        if value is None:
            append(None)
            continue
        if not isinstance(value, Decimal):
            raise TypeError(f"expected Decimal, got {type(value).__name__}")
        scaled = value.scaleb(scale)
        whole = int(scaled)
        if whole != scaled:
            raise ValueError(f"{value} has more than {scale} decimal places")
        append(whole)
    return units


@dataclass(frozen=True)
class _Column:
    """One column of a set-at-a-time write: its values row by row."""

    name: str
    sql_type: str
    values: list[Any]
    # The table column whose type stores the values (None: stored as given).
    stored_as: Any = None
    # Usually one value for a whole batch (its receipt instant, its kind): then sent once.
    often_one: bool = False


def _unnest(columns: Sequence[_Column]) -> tuple[str, dict[str, Any]]:
    """``SELECT ... FROM unnest(...)`` over parallel columns, and its parameters.

    A column flagged ``often_one`` whose values are all equal is sent as one parameter
    instead of an array: the driver encodes one value instead of one per row.
    """
    items: list[str] = []
    arrays: list[str] = []
    names: list[str] = []
    params: dict[str, Any] = {}
    for column in columns:
        values = column.values
        if column.often_one and values and values.count(values[0]) == len(values):
            items.append(f"CAST(:{column.name} AS {column.sql_type})")
            params[column.name] = _stored(column.stored_as, values[:1])[0]
        else:
            items.append(f"u.{column.name}")
            arrays.append(f"CAST(:{column.name} AS {column.sql_type}[])")
            names.append(column.name)
            params[column.name] = _stored(column.stored_as, values)
    assert arrays, "at least one column varies by row"
    select = f"SELECT {', '.join(items)} FROM unnest({', '.join(arrays)}) AS u({', '.join(names)})"
    return select, params


def _insert(session: AsyncSession, table: Table) -> Any:
    return (postgresql if _is_postgres(session) else sqlite).insert(table)


async def insert_readings(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Record raw readings; a (meter, instant) already recorded keeps its first value."""
    if not rows:
        return
    if not _is_postgres(session):
        await session.execute(_insert(session, readings).on_conflict_do_nothing(), rows)
        return
    select, params = _unnest(
        [
            _Column("meter", "varchar", [r["meter_id"] for r in rows]),
            _Column("at", "timestamptz", [r["read_at"] for r in rows], readings.c.read_at),
            _Column("kwh", "bigint", [r["energy_kwh"] for r in rows], readings.c.energy_kwh),
            _Column(
                "received",
                "timestamptz",
                [r["received_at"] for r in rows],
                readings.c.received_at,
                often_one=True,
            ),
        ]
    )
    await session.execute(
        text(
            "INSERT INTO billing_readings (meter_id, read_at, energy_kwh, received_at) "
            f"{select} ON CONFLICT DO NOTHING"
        ),
        params,
    )


async def update_positions(session: AsyncSession, positions: dict[str, str]) -> None:
    """Store each meter's new rating position (its JSON text, stored as given)."""
    if not positions:
        return
    if not _is_postgres(session):
        await session.execute(
            update(meters)
            .where(meters.c.meter_id == bindparam("b_meter"))
            .values(position=bindparam("b_position", type_=Text())),
            [{"b_meter": m, "b_position": p} for m, p in positions.items()],
        )
        return
    await session.execute(
        text(
            "UPDATE billing_meters AS m SET position = CAST(v.position AS json) "
            "FROM unnest(CAST(:meter AS varchar[]), CAST(:position AS text[])) "
            "AS v(meter_id, position) WHERE m.meter_id = v.meter_id"
        ),
        {"meter": list(positions), "position": list(positions.values())},
    )


async def add_daily_usage(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Add energy and cost to each (meter, day) roll-up, creating the day's row if needed."""
    if not rows:
        return
    if not _is_postgres(session):
        statement = _insert(session, daily_usage)
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=[daily_usage.c.meter_id, daily_usage.c.day],
                set_={
                    "metered_kwh": daily_usage.c.metered_kwh + statement.excluded.metered_kwh,
                    "billed_kwh": daily_usage.c.billed_kwh + statement.excluded.billed_kwh,
                    "cost": daily_usage.c.cost + statement.excluded.cost,
                },
            ),
            rows,
        )
        return
    select, params = _unnest(
        [
            _Column("meter", "varchar", [r["meter_id"] for r in rows]),
            _Column("day", "varchar", [r["day"] for r in rows], often_one=True),
            _Column("account", "varchar", [r["account_id"] for r in rows]),
            _Column(
                "metered", "bigint", [r["metered_kwh"] for r in rows], daily_usage.c.metered_kwh
            ),
            _Column("billed", "bigint", [r["billed_kwh"] for r in rows], daily_usage.c.billed_kwh),
            _Column("cost", "bigint", [r["cost"] for r in rows], daily_usage.c.cost),
        ]
    )
    await session.execute(
        text(
            "INSERT INTO billing_daily_usage "
            f"(meter_id, day, account_id, metered_kwh, billed_kwh, cost) {select} "
            "ON CONFLICT (meter_id, day) DO UPDATE SET "
            "metered_kwh = billing_daily_usage.metered_kwh + excluded.metered_kwh, "
            "billed_kwh = billing_daily_usage.billed_kwh + excluded.billed_kwh, "
            "cost = billing_daily_usage.cost + excluded.cost"
        ),
        params,
    )


async def insert_postings(
    session: AsyncSession, headers: list[dict[str, Any]], lines: list[dict[str, Any]]
) -> None:
    """Insert ledger transactions and their entries."""
    if not _is_postgres(session):
        await session.execute(transactions.insert(), headers)
        await session.execute(entries.insert(), lines)
        return
    select, params = _unnest(
        [
            _Column("id", "varchar", [h["id"] for h in headers]),
            _Column("key", "varchar", [h["operation_key"] for h in headers]),
            _Column("kind", "varchar", [h["kind"] for h in headers], often_one=True),
            _Column("account", "varchar", [h["account_id"] for h in headers]),
            _Column("memo", "varchar", [h["memo"] for h in headers]),
            _Column("operator", "varchar", [h["operator"] for h in headers], often_one=True),
            _Column("reverses", "varchar", [h["reverses"] for h in headers], often_one=True),
            _Column(
                "created",
                "timestamptz",
                [h["created_at"] for h in headers],
                transactions.c.created_at,
                often_one=True,
            ),
        ]
    )
    await session.execute(
        text(
            "INSERT INTO billing_transactions "
            f"(id, operation_key, kind, account_id, memo, operator, reverses, created_at) {select}"
        ),
        params,
    )
    select, params = _unnest(
        [
            _Column("txn", "varchar", [line["transaction_id"] for line in lines]),
            _Column("account", "varchar", [line["ledger_account"] for line in lines]),
            _Column("amount", "bigint", [line["amount"] for line in lines], entries.c.amount),
        ]
    )
    await session.execute(
        text(f"INSERT INTO billing_entries (transaction_id, ledger_account, amount) {select}"),
        params,
    )


async def move_balances(session: AsyncSession, moves: dict[str, Decimal]) -> None:
    """Add each amount to its ledger account's balance, creating the row if needed."""
    # Sorted, so that concurrent postings lock balance rows in one order (no deadlock).
    names = sorted(moves)
    if not _is_postgres(session):
        statement = _insert(session, balances)
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=[balances.c.ledger_account],
                set_={"balance": balances.c.balance + statement.excluded.balance},
            ),
            [{"ledger_account": name, "balance": moves[name]} for name in names],
        )
        return
    select, params = _unnest(
        [
            _Column("account", "varchar", names),
            _Column("amount", "bigint", [moves[name] for name in names], balances.c.balance),
        ]
    )
    await session.execute(
        text(
            f"INSERT INTO billing_balances (ledger_account, balance) {select} "
            "ON CONFLICT (ledger_account) DO UPDATE "
            "SET balance = billing_balances.balance + excluded.balance"
        ),
        params,
    )
