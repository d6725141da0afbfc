"""Set-at-a-time writes for a batch of readings and postings.

On PostgreSQL each write is ONE statement over arrays (``unnest``): the server runs one
plan instead of a thousand, and the driver encodes whole columns at once. Elsewhere
(SQLite) the same writes are SQLAlchemy executemany calls. Values go through the columns'
own types first (``ScaledDecimal`` refuses a sub-unit amount), so both paths store the
same integers.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

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
    """Values as the column stores them (integers for scaled decimals, UTC timestamps)."""
    bind = getattr(column.type, "process_bind_param", None)
    if bind is None:
        return list(values)
    return [bind(value, None) for value in values]


def _insert(session: AsyncSession, table: Table) -> Any:
    return (postgresql if _is_postgres(session) else sqlite).insert(table)


async def insert_readings(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Record raw readings; a (meter, instant) already recorded keeps its first value."""
    if not rows:
        return
    if not _is_postgres(session):
        await session.execute(_insert(session, readings).on_conflict_do_nothing(), rows)
        return
    await session.execute(
        text(
            "INSERT INTO billing_readings (meter_id, read_at, energy_kwh, received_at) "
            "SELECT * FROM unnest(CAST(:meter AS varchar[]), CAST(:at AS timestamptz[]), "
            "CAST(:kwh AS bigint[]), CAST(:received AS timestamptz[])) "
            "ON CONFLICT DO NOTHING"
        ),
        {
            "meter": [r["meter_id"] for r in rows],
            "at": _stored(readings.c.read_at, [r["read_at"] for r in rows]),
            "kwh": _stored(readings.c.energy_kwh, [r["energy_kwh"] for r in rows]),
            "received": _stored(readings.c.received_at, [r["received_at"] for r in rows]),
        },
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
    await session.execute(
        text(
            "INSERT INTO billing_daily_usage "
            "(meter_id, day, account_id, metered_kwh, billed_kwh, cost) "
            "SELECT * FROM unnest(CAST(:meter AS varchar[]), CAST(:day AS varchar[]), "
            "CAST(:account AS varchar[]), CAST(:metered AS bigint[]), "
            "CAST(:billed AS bigint[]), CAST(:cost AS bigint[])) "
            "ON CONFLICT (meter_id, day) DO UPDATE SET "
            "metered_kwh = billing_daily_usage.metered_kwh + excluded.metered_kwh, "
            "billed_kwh = billing_daily_usage.billed_kwh + excluded.billed_kwh, "
            "cost = billing_daily_usage.cost + excluded.cost"
        ),
        {
            "meter": [r["meter_id"] for r in rows],
            "day": [r["day"] for r in rows],
            "account": [r["account_id"] for r in rows],
            "metered": _stored(daily_usage.c.metered_kwh, [r["metered_kwh"] for r in rows]),
            "billed": _stored(daily_usage.c.billed_kwh, [r["billed_kwh"] for r in rows]),
            "cost": _stored(daily_usage.c.cost, [r["cost"] for r in rows]),
        },
    )


async def insert_postings(
    session: AsyncSession, headers: list[dict[str, Any]], lines: list[dict[str, Any]]
) -> None:
    """Insert ledger transactions and their entries."""
    if not _is_postgres(session):
        await session.execute(transactions.insert(), headers)
        await session.execute(entries.insert(), lines)
        return
    await session.execute(
        text(
            "INSERT INTO billing_transactions "
            "(id, operation_key, kind, account_id, memo, operator, reverses, created_at) "
            "SELECT * FROM unnest(CAST(:id AS varchar[]), CAST(:key AS varchar[]), "
            "CAST(:kind AS varchar[]), CAST(:account AS varchar[]), CAST(:memo AS varchar[]), "
            "CAST(:operator AS varchar[]), CAST(:reverses AS varchar[]), "
            "CAST(:created AS timestamptz[]))"
        ),
        {
            "id": [h["id"] for h in headers],
            "key": [h["operation_key"] for h in headers],
            "kind": [h["kind"] for h in headers],
            "account": [h["account_id"] for h in headers],
            "memo": [h["memo"] for h in headers],
            "operator": [h["operator"] for h in headers],
            "reverses": [h["reverses"] for h in headers],
            "created": _stored(transactions.c.created_at, [h["created_at"] for h in headers]),
        },
    )
    await session.execute(
        text(
            "INSERT INTO billing_entries (transaction_id, ledger_account, amount) "
            "SELECT * FROM unnest(CAST(:txn AS varchar[]), CAST(:account AS varchar[]), "
            "CAST(:amount AS bigint[]))"
        ),
        {
            "txn": [line["transaction_id"] for line in lines],
            "account": [line["ledger_account"] for line in lines],
            "amount": _stored(entries.c.amount, [line["amount"] for line in lines]),
        },
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
    await session.execute(
        text(
            "INSERT INTO billing_balances (ledger_account, balance) "
            "SELECT * FROM unnest(CAST(:account AS varchar[]), CAST(:amount AS bigint[])) "
            "ON CONFLICT (ledger_account) DO UPDATE "
            "SET balance = billing_balances.balance + excluded.balance"
        ),
        {
            "account": names,
            "amount": _stored(balances.c.balance, [moves[name] for name in names]),
        },
    )
