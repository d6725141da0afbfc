"""Positions kept in memory between batches: the database stays the truth. A batch that
rolled back, another replica or an operator's swap moves the stored position, and the next
batch charges from what is stored, never twice and never from a position that did not
commit. On SQLite and PostgreSQL, asserting on the ledger itself."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from billing.service import BillingService
from billing.tables import entries
from prepaid_common.contracts import utcnow
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from testkit.billing import balance, billing_on, define_tariff, open_with_meters, reading

NOW = utcnow().replace(microsecond=0) - timedelta(hours=2)
FLAT = "flat-1"


@pytest.fixture
async def service(backend: tuple[str, str]) -> AsyncIterator[BillingService]:
    database_url, _ = backend
    billing = await billing_on(database_url)
    await service_tariff(billing)
    yield billing
    await check_ledger(billing)
    await billing.engine.dispose()


async def service_tariff(billing: BillingService) -> None:
    from billing.domain.tariffs import TariffDefinition

    await define_tariff(billing, FLAT, TariffDefinition(kind="flat", price_per_kwh=Decimal(1)))


async def check_ledger(billing: BillingService) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=billing.internal_app()), base_url="http://billing"
    ) as api:
        check: dict[str, Any] = (await api.get("/internal/ledger/check")).json()
    assert Decimal(check["sum"]) == 0
    assert check["unbalanced"] == []
    assert check["projection_mismatches"] == []


async def consumption_charged(billing: BillingService, account: str) -> Decimal:
    """What the ledger's entries took from the tenant for energy (not the projection)."""
    from billing.tables import transactions

    async with billing.store.sessionmaker() as session:
        total = await session.scalar(
            select(func.coalesce(func.sum(entries.c.amount), 0))
            .join(transactions, transactions.c.id == entries.c.transaction_id)
            .where(
                transactions.c.kind == "consumption",
                entries.c.ledger_account == f"tenant:{account}",
            )
        )
    return -Decimal(total)


def at(minutes: int) -> Any:
    return NOW + timedelta(minutes=minutes)


async def test_later_batches_take_the_kept_position(service: BillingService) -> None:
    await open_with_meters(service, "A", ["M1"], tariff_id=FLAT)
    batch = service.store.idempotent_batch(service.handlers.handle_readings)
    await batch([reading("M1", at(0), "10")])
    misses = service.handlers.positions.misses
    for minute in range(1, 6):
        await batch([reading("M1", at(minute), str(10 + minute))])
    assert service.handlers.positions.misses == misses  # all five from memory
    assert await consumption_charged(service, "A") == Decimal("5.00")
    assert await balance(service, "A") == Decimal("95.00")


async def test_a_rolled_back_batch_leaves_no_position_behind(
    service: BillingService, monkeypatch: pytest.MonkeyPatch
) -> None:
    await open_with_meters(service, "A", ["M1"], tariff_id=FLAT)
    batch = service.store.idempotent_batch(service.handlers.handle_readings)
    await batch([reading("M1", at(0), "10")])
    await batch([reading("M1", at(1), "11")])  # the position (11 kWh) is now kept
    failed = [reading("M1", at(m), str(10 + m)) for m in (2, 3)]
    commit = AsyncSession.commit
    failures = iter([True])

    async def failing_commit(session: AsyncSession) -> None:
        if next(failures, False):
            raise ConnectionResetError("database gone at commit")
        await commit(session)

    monkeypatch.setattr(AsyncSession, "commit", failing_commit)
    with pytest.raises(ConnectionResetError):
        await batch(failed)  # rated to 13 kWh in memory, rolled back in the database
    # A newer reading arrives first: it is charged from the stored 11 kWh, not from the
    # 13 kWh the failed batch had reached (that would charge 2 kWh less).
    await batch([reading("M1", at(5), "15")])
    assert await consumption_charged(service, "A") == Decimal("5.00")
    # The failed batch comes back: late now, so stale, and nothing is charged twice.
    await batch(failed)
    await batch([reading("M1", at(6), "16")])
    assert await consumption_charged(service, "A") == Decimal("6.00")
    assert await balance(service, "A") == Decimal("94.00")


async def test_another_replica_moving_the_position_is_seen(
    service: BillingService, backend: tuple[str, str]
) -> None:
    await open_with_meters(service, "A", ["M1"], tariff_id=FLAT)
    other = await billing_on(backend[0])
    try:
        mine = service.store.idempotent_batch(service.handlers.handle_readings)
        theirs = other.store.idempotent_batch(other.handlers.handle_readings)
        await mine([reading("M1", at(0), "10")])
        await mine([reading("M1", at(1), "11")])
        await theirs([reading("M1", at(2), "13")])  # the other replica rates 2 kWh
        await mine([reading("M1", at(3), "14")])  # 1 kWh more, from the stored 13
        await theirs([reading("M1", at(4), "17")])
        await mine([reading("M1", at(5), "18")])
    finally:
        await other.engine.dispose()
    assert await consumption_charged(service, "A") == Decimal("8.00")
    assert await balance(service, "A") == Decimal("92.00")


async def test_a_swap_replaces_the_kept_position(service: BillingService) -> None:
    await open_with_meters(service, "A", ["OLD"], tariff_id=FLAT)
    batch = service.store.idempotent_batch(service.handlers.handle_readings)
    await batch([reading("OLD", at(0), "10")])
    await batch([reading("OLD", at(1), "12")])
    await service.operations.meters.swap_meter(
        old_meter_id="OLD",
        new_meter_id="NEW",
        old_final_kwh=Decimal(13),
        new_start_kwh=Decimal(0),
        operator="t",
    )
    await batch([reading("NEW", utcnow() + timedelta(minutes=5), "1")])
    # 2 + 1 kWh on the old meter, 1 kWh on the new one.
    assert await consumption_charged(service, "A") == Decimal("4.00")
    # The old meter id bound again starts afresh, whatever was kept for it: its first
    # reading only fixes the start.
    await service.operations.meters.bind_meter(meter_id="OLD", account_id="A")
    await batch([reading("OLD", utcnow() + timedelta(minutes=6), "50")])
    await batch([reading("OLD", utcnow() + timedelta(minutes=7), "51")])
    assert await consumption_charged(service, "A") == Decimal("5.00")
