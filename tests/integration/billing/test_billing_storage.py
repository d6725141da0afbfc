"""Raw readings on PostgreSQL: monthly partitions made ahead, a DEFAULT partition so no
insert fails, retention that drops old partitions and keeps the daily roll-ups."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from billing import partitions
from billing.bootstrap import build
from billing.service import BillingService
from billing.settings import BillingSettings
from billing.tables import daily_usage, readings
from prepaid_common.bus import InProcessBus
from prepaid_common.contracts import utcnow
from prepaid_common.db import create_engine
from sqlalchemy import func, select, text
from testkit.billing import define_tariff, open_with_meters, reading


@pytest.fixture
async def billing(postgres_url: str) -> AsyncIterator[BillingService]:
    service = build(
        BillingSettings(billing_reading_retention_days=400),
        engine=create_engine(postgres_url),
        bus=InProcessBus(),
    )
    await service.migrate()
    await define_tariff(service, "tiered")
    yield service
    await service.engine.dispose()


async def partition_of(billing: BillingService, meter_id: str, at: datetime) -> str:
    async with billing.store.sessionmaker() as session:
        name: str = await session.scalar(
            text(
                "SELECT tableoid::regclass::text FROM billing_readings "
                "WHERE meter_id = :meter AND read_at = :at"
            ),
            {"meter": meter_id, "at": at},
        )
        return name


async def partition_names(billing: BillingService) -> set[str]:
    async with billing.engine.connect() as connection:
        return set(await connection.run_sync(partitions.existing_partitions))


async def test_migration_makes_this_and_the_next_months_and_a_default(
    billing: BillingService,
) -> None:
    start = partitions.month_start(utcnow())
    expected = {partitions.DEFAULT_PARTITION}
    for _ in range(partitions.MONTHS_AHEAD + 1):
        expected.add(partitions.partition_name(start))
        start = partitions.next_month(start)
    assert await partition_names(billing) == expected
    async with billing.store.sessionmaker() as session:
        kind = await session.scalar(
            text("SELECT relkind::text FROM pg_class WHERE relname = 'billing_readings'")
        )
    assert kind == "p"  # partitioned


async def test_a_reading_far_off_lands_in_the_default_partition_and_moves_later(
    billing: BillingService,
) -> None:
    await open_with_meters(billing, "A", ["M1"], tariff_id="tiered")
    consume = billing.store.idempotent_batch(billing.handlers.handle_readings)
    now = utcnow().replace(microsecond=0)
    far = now + timedelta(days=3 * 365)
    await consume([reading("M1", now, "1"), reading("M1", far, "2")])
    assert await partition_of(billing, "M1", now) == partitions.partition_name(
        partitions.month_start(now)
    )
    assert await partition_of(billing, "M1", far) == partitions.DEFAULT_PARTITION
    # When the sweep reaches that month, its partition takes the row out of the default.
    await billing.calendar.keep_readings(far)
    assert await partition_of(billing, "M1", far) == partitions.partition_name(
        partitions.month_start(far)
    )


async def test_retention_drops_old_partitions_and_keeps_daily_usage(
    billing: BillingService,
) -> None:
    await open_with_meters(billing, "A", ["M1"], tariff_id="tiered")
    old = datetime(utcnow().year - 2, 3, 10, 12, tzinfo=UTC)
    # The sweep, run back then, made that month's partition.
    await billing.calendar.keep_readings(old)
    assert partitions.partition_name(partitions.month_start(old)) in await partition_names(billing)
    consume = billing.store.idempotent_batch(billing.handlers.handle_readings)
    await consume([reading("M1", old, "10"), reading("M1", old + timedelta(hours=1), "13")])
    assert await partition_of(billing, "M1", old) == partitions.partition_name(
        partitions.month_start(old)
    )
    await billing.calendar.sweep(now=utcnow())
    names = await partition_names(billing)
    assert partitions.partition_name(partitions.month_start(old)) not in names
    assert partitions.partition_name(partitions.month_start(utcnow())) in names
    async with billing.store.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(readings)) == 0
        usage = (await session.execute(select(daily_usage.c.metered_kwh, daily_usage.c.cost))).all()
    assert [(row.metered_kwh, row.cost) for row in usage] == [(Decimal("3"), Decimal("3.00"))]


async def test_sqlite_keeps_a_plain_table_and_deletes_expired_readings(sqlite_url: str) -> None:
    billing = build(BillingSettings(), engine=create_engine(sqlite_url), bus=InProcessBus())
    try:
        await billing.migrate()
        await define_tariff(billing, "tiered")
        await open_with_meters(billing, "A", ["M1"], tariff_id="tiered")
        old = utcnow().replace(microsecond=0) - timedelta(days=500)
        consume = billing.store.idempotent_batch(billing.handlers.handle_readings)
        await consume([reading("M1", old, "10"), reading("M1", old + timedelta(hours=1), "12")])
        await consume([reading("M1", utcnow(), "13")])
        assert await billing.calendar.keep_readings(utcnow()) == []
        async with billing.store.sessionmaker() as session:
            left = (await session.scalars(select(readings.c.energy_kwh))).all()
            usage = await session.scalar(select(func.sum(daily_usage.c.metered_kwh)))
        assert left == [Decimal("13.000")]
        assert usage == Decimal("3")
    finally:
        await billing.engine.dispose()


async def test_upgrading_a_filled_0001_database_keeps_its_readings_and_balances(
    postgres_url: str,
) -> None:
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import Connection

    engine = create_engine(postgres_url)
    service = BillingService(engine=engine, bus=InProcessBus())
    config = Config()
    config.set_main_option("script_location", str(service.migrations_dir))
    config.attributes["version_table"] = "billing_alembic_version"

    def to_0001(connection: Connection) -> None:
        config.attributes["connection"] = connection
        command.upgrade(config, "billing_0001")

    now = utcnow().replace(microsecond=0)
    before = now - timedelta(days=80)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(to_0001)
            await connection.execute(
                text(
                    "INSERT INTO billing_readings VALUES ('M1', :a, 1000, :a), ('M1', :b, 2000, :b)"
                ),
                {"a": before, "b": now},
            )
            await connection.execute(
                text(
                    "INSERT INTO billing_transactions VALUES "
                    "('t1', 'k1', 'top_up', 'A', '', 'x', NULL, :a)"
                ),
                {"a": now},
            )
            await connection.execute(
                text(
                    "INSERT INTO billing_entries (transaction_id, ledger_account, amount) "
                    "VALUES ('t1', 'tenant:A', 500), ('t1', 'clearing:cash', -500)"
                )
            )
        await service.migrate()
        assert await partition_of(service, "M1", now) == partitions.partition_name(
            partitions.month_start(now)
        )
        assert await partition_of(service, "M1", before) == partitions.partition_name(
            partitions.month_start(before)
        )
        async with service.store.sessionmaker() as session:
            from billing.store.balances import balance_of

            assert await balance_of(session, "A") == Decimal("5.00")
    finally:
        await engine.dispose()
