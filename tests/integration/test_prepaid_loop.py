"""The whole prepaid loop, in one process, on both backends.

The same wiring as ``make run`` (``standalone.app.Standalone``), once on SQLite with the
in-process bus and once on PostgreSQL with RabbitMQ: simulated meters are read over Modbus
TCP, billing debits the accounts, a low-credit meter is tripped, a top-up closes it, and the
ledger balances throughout.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from billing.store.balances import balance_of
from prepaid_common.contracts import Envelope, PaymentSucceededV1, utcnow
from standalone.app import Standalone
from testkit import wait_until
from testkit.standalone import admin_client, running_product


@pytest.fixture
async def product(
    backend: tuple[str, str], bus_prefix: str, tmp_path: Path
) -> AsyncIterator[Standalone]:
    async with running_product(
        backend, bus_prefix, tmp_path / "data", sim_dtus=2, sim_meters=4, sim_speed=900
    ) as running:
        yield running


@pytest.fixture
async def api(product: Standalone) -> AsyncIterator[httpx.AsyncClient]:
    async with admin_client(product) as client:
        yield client


async def relay_of(api: httpx.AsyncClient, meter_id: str) -> str | None:
    response = await api.get(f"/api/v1/meters/{meter_id}")
    assert response.status_code == 200, response.text
    relay: str | None = response.json()["relay"]
    return relay


async def test_trip_on_empty_credit_and_close_on_top_up(
    product: Standalone, api: httpx.AsyncClient
) -> None:
    low = product.low_credit_accounts[0]
    meter_id = low.removeprefix("ACC-")

    async def tripped() -> bool:
        return await relay_of(api, meter_id) == "open"

    await wait_until(tripped, timeout=60)
    assert product.simulator is not None
    assert product.simulator.meter(meter_id).relay == "open"
    account = (await api.get(f"/api/v1/accounts/{low}")).json()
    assert Decimal(account["balance"]) <= 0
    assert account["supply"] == "off"

    top_up = await api.post(
        f"/api/v1/accounts/{low}/top-ups", json={"amount": "30.00", "receipt": "INT-1"}
    )
    assert top_up.status_code == 201, top_up.text

    async def closed() -> bool:
        return await relay_of(api, meter_id) == "closed"

    await wait_until(closed, timeout=30)
    assert product.simulator.meter(meter_id).relay == "closed"

    async def both_commands_done() -> list[tuple[str, str]] | None:
        items = (await api.get(f"/api/v1/meters/{meter_id}/commands")).json()["items"]
        done = [(c["action"], c["status"]) for c in items[:2]]
        return done if all(status != "sent" for _, status in done) else None

    assert await wait_until(both_commands_done) == [
        ("close", "succeeded"),
        ("trip", "succeeded"),
    ]
    await assert_ledger_balances(product)


async def test_a_payment_delivered_twice_is_credited_once(product: Standalone) -> None:
    payment = PaymentSucceededV1(
        payment_id="dup-1",
        account_id="ACC-DTU0001-02",
        amount=Decimal("7.77"),
        method="cash",
        reference="DUP-1",
        at=utcnow(),
    )
    envelope = Envelope.wrap(payment, producer="test")
    consume = product.billing.store.idempotent(product.billing.handlers.handle_payment)
    async with product.billing.store.sessionmaker() as session:
        before = await balance_of(session, "ACC-DTU0001-02")
    await consume(envelope)
    async with product.billing.store.sessionmaker() as session:
        once = await balance_of(session, "ACC-DTU0001-02")
    # The same message again, and the same payment under a new message id.
    await consume(envelope)
    await consume(Envelope.wrap(payment, producer="test"))
    async with product.billing.store.sessionmaker() as session:
        twice = await balance_of(session, "ACC-DTU0001-02")
    # Consumption may be charged meanwhile; the credit itself appears exactly once.
    assert once - before <= Decimal("7.77")
    async with product.billing.store.sessionmaker() as session:
        from billing.tables import transactions
        from sqlalchemy import func, select

        credits = await session.scalar(
            select(func.count())
            .select_from(transactions)
            .where(transactions.c.operation_key == "payment:dup-1")
        )
    assert credits == 1
    assert twice <= once
    await assert_ledger_balances(product)


async def assert_ledger_balances(product: Standalone) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=product.billing.internal_app()), base_url="http://b"
    ) as billing:
        check: dict[str, Any] = (await billing.get("/internal/ledger/check")).json()
        assert Decimal(check["sum"]) == 0
        assert check["unbalanced"] == []
        assert check["projection_mismatches"] == []
        accounts = (await billing.get("/internal/accounts", params={"limit": 500})).json()
        for account in accounts["items"]:
            ledger = (
                await billing.get(
                    f"/internal/accounts/{account['id']}/ledger", params={"limit": 500}
                )
            ).json()["items"]
            # Ledger lines are newest first, each with the running balance after it.
            total = sum((Decimal(line["amount"]) for line in ledger), Decimal(0))
            if ledger:
                assert Decimal(ledger[0]["balance_after"]) == total
