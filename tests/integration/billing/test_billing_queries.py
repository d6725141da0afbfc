"""What billing's reads cost and see: a page of accounts and the dunning list take the same
few queries however many accounts there are, and the ledger check reads one moment. On
SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from billing.service import BillingService
from prepaid_common.contracts import utcnow
from sqlalchemy import event
from testkit.billing import billing_on, define_tariff, open_with_meters, reading

NOW = utcnow().replace(microsecond=0)


@pytest.fixture
async def service(backend: tuple[str, str]) -> AsyncIterator[BillingService]:
    billing = await billing_on(backend[0])
    await define_tariff(billing, "tiered")
    yield billing
    await billing.engine.dispose()


@pytest.fixture
async def api(service: BillingService) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=service.internal_app()), base_url="http://billing"
    ) as client:
        yield client


@contextmanager
def statements(service: BillingService) -> Iterator[list[str]]:
    """Collect the SQL statements the service's engine runs meanwhile (not BEGIN)."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if not statement.startswith("BEGIN"):
            seen.append(statement)

    engine = service.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def open_accounts(service: BillingService, first: int, count: int) -> None:
    """Open accounts (two meters each), some of them in debt."""
    for index in range(first, first + count):
        account = f"A{index:03d}"
        await open_with_meters(
            service,
            account,
            [f"{account}-M1", f"{account}-M2"],
            tariff_id="tiered",
            credit="3.00" if index % 2 else "100.00",
        )
        consume = service.store.idempotent_batch(service.handlers.handle_readings)
        await consume(
            [
                reading(f"{account}-M1", NOW, "0"),
                reading(f"{account}-M1", NOW + timedelta(minutes=5), "4"),
            ]
        )


async def queries_for(service: BillingService, api: httpx.AsyncClient, url: str) -> int:
    with statements(service) as seen:
        response = await api.get(url)
    assert response.status_code == 200, response.text
    return len(seen)


async def test_a_page_of_accounts_takes_the_same_queries_for_2_or_12_accounts(
    service: BillingService, api: httpx.AsyncClient
) -> None:
    await open_accounts(service, 0, 2)
    few = await queries_for(service, api, "/internal/accounts")
    one = await queries_for(service, api, "/internal/accounts/A000")
    await open_accounts(service, 2, 10)
    many = await queries_for(service, api, "/internal/accounts")
    page = (await api.get("/internal/accounts")).json()
    assert page["total"] == 12
    assert len(page["items"]) == 12
    assert page["items"][1]["meter_ids"] == ["A001-M1", "A001-M2"]
    # The count, the page, then meters, groups and balances for the whole page.
    assert few == many <= 5
    assert one == await queries_for(service, api, "/internal/accounts/A011") <= 4


async def test_the_dunning_list_takes_the_same_queries_for_2_or_12_accounts(
    service: BillingService, api: httpx.AsyncClient
) -> None:
    await open_accounts(service, 0, 2)
    few = await queries_for(service, api, "/internal/dunning")
    await open_accounts(service, 2, 10)
    many = await queries_for(service, api, "/internal/dunning")
    owing = (await api.get("/internal/dunning")).json()["items"]
    # Odd accounts had 3.00 and used 4 kWh of the tiered tariff (1.00 yuan/kWh up to 5).
    assert [item["account_id"] for item in owing] == [f"A{i:03d}" for i in range(1, 12, 2)]
    assert {item["amount_due"] for item in owing} == {"1.00"}
    assert few == many <= 2


async def test_the_ledger_check_is_one_statement(
    service: BillingService, api: httpx.AsyncClient
) -> None:
    await open_accounts(service, 0, 2)
    assert await queries_for(service, api, "/internal/ledger/check") == 1


async def test_the_ledger_check_never_sees_half_a_posting_while_readings_are_rated(
    service: BillingService, api: httpx.AsyncClient
) -> None:
    """Checks run while batches post: entries and the projection always agree.

    Reading the sum, the per-account sums and the projection in separate statements could
    see a batch commit between them and report a mismatch that never existed.
    """
    await open_accounts(service, 0, 4)
    consume = service.store.idempotent_batch(service.handlers.handle_readings)
    done = asyncio.Event()

    async def post_readings() -> None:
        try:
            for minute in range(10, 40):
                await consume(
                    [
                        reading(f"A{i:03d}-M1", NOW + timedelta(minutes=minute), str(minute))
                        for i in range(4)
                    ]
                )
        finally:
            done.set()

    async def check_meanwhile() -> int:
        checks = 0
        while not done.is_set():
            check = (await api.get("/internal/ledger/check")).json()
            assert Decimal(check["sum"]) == 0
            assert check["unbalanced"] == []
            assert check["projection_mismatches"] == []
            checks += 1
        return checks

    _, checks = await asyncio.gather(post_readings(), check_meanwhile())
    assert checks > 0
