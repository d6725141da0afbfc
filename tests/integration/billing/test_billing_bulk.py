"""Set-at-a-time writes store what the columns' own types store, whether a column varies by
row or holds one value for the whole batch. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from billing import bulk
from billing.tables import daily_usage, entries, readings, transactions
from sqlalchemy import select
from testkit.billing import billing_on


@pytest.mark.parametrize("one_instant", [True, False])
async def test_writes_store_the_same_rows_whether_a_column_is_one_value_or_many(
    backend: tuple[str, str], one_instant: bool
) -> None:
    database_url, _ = backend
    service = await billing_on(database_url)
    base = datetime(2026, 11, 27, 8, tzinfo=UTC)
    beijing = timezone(timedelta(hours=8))
    # The same instant written in two zones is one value; otherwise one per row.
    received = [base.astimezone(beijing), base] if one_instant else [base, base + timedelta(1)]
    try:
        async with service.store.unit_of_work() as uow:
            session = uow.session
            await bulk.insert_readings(
                session,
                [
                    {
                        "meter_id": f"M{index}",
                        "read_at": base - timedelta(minutes=index),
                        "energy_kwh": Decimal("12.345"),
                        "received_at": received[index],
                    }
                    for index in range(2)
                ],
            )
            await bulk.insert_postings(
                session,
                [
                    {
                        "id": f"t{index}",
                        "operation_key": f"k{index}",
                        "kind": "consumption",
                        "account_id": "A",
                        "memo": f"memo {index}",
                        "operator": "system",
                        "reverses": None,
                        "created_at": received[index],
                    }
                    for index in range(2)
                ],
                [
                    {"transaction_id": f"t{index}", "ledger_account": account, "amount": amount}
                    for index in range(2)
                    for account, amount in (("tenant:A", Decimal("-0.04")), ("r", Decimal("0.04")))
                ],
            )
            await bulk.add_daily_usage(
                session,
                [
                    {
                        "meter_id": "M0",
                        "day": "2026-11-27",
                        "account_id": "A",
                        "metered_kwh": Decimal("0.05"),
                        "billed_kwh": Decimal("0.0525"),
                        "cost": Decimal("0.04"),
                    },
                    {
                        "meter_id": "M1",
                        "day": "2026-11-27" if one_instant else "2026-11-28",
                        "account_id": "A",
                        "metered_kwh": Decimal("0.05"),
                        "billed_kwh": Decimal("0.0525"),
                        "cost": Decimal("0.04"),
                    },
                ],
            )
        async with service.store.sessionmaker() as session:
            stored = (
                await session.execute(
                    select(readings.c.meter_id, readings.c.received_at).order_by(
                        readings.c.meter_id
                    )
                )
            ).all()
            assert [tuple(row) for row in stored] == [
                ("M0", received[0].astimezone(UTC)),
                ("M1", received[1].astimezone(UTC)),
            ]
            posted = (
                await session.execute(
                    select(
                        transactions.c.id,
                        transactions.c.kind,
                        transactions.c.operator,
                        transactions.c.reverses,
                        transactions.c.created_at,
                    ).order_by(transactions.c.id)
                )
            ).all()
            assert [tuple(row) for row in posted] == [
                (f"t{index}", "consumption", "system", None, received[index].astimezone(UTC))
                for index in range(2)
            ]
            amounts = (await session.scalars(select(entries.c.amount))).all()
            assert sorted(amounts) == [Decimal("-0.04")] * 2 + [Decimal("0.04")] * 2
            usage = (
                await session.execute(
                    select(
                        daily_usage.c.meter_id, daily_usage.c.day, daily_usage.c.billed_kwh
                    ).order_by(daily_usage.c.meter_id)
                )
            ).all()
            assert [tuple(row) for row in usage] == [
                ("M0", "2026-11-27", Decimal("0.052500")),
                ("M1", "2026-11-27" if one_instant else "2026-11-28", Decimal("0.052500")),
            ]
    finally:
        await service.engine.dispose()


async def test_writes_of_nothing_write_nothing_on_postgresql(postgres_url: str) -> None:
    service = await billing_on(postgres_url)
    try:
        async with service.store.unit_of_work() as uow:
            await bulk.insert_readings(uow.session, [])
            await bulk.insert_postings(uow.session, [], [])
            await bulk.add_daily_usage(uow.session, [])
            await bulk.move_balances(uow.session, {})
        async with service.store.sessionmaker() as session:
            assert (await session.scalars(select(transactions.c.id))).all() == []
    finally:
        await service.engine.dispose()
