"""Billing's lock order on PostgreSQL (store/locks.py): a money movement takes the account's
meter rows before its balance, as rating a batch of readings does, so the two wait for each
other instead of deadlocking. Found by bench-relay-latency: a refund under 10,000 polled
meters answered 503 ("deadlock detected") while a batch held the refunded account's meter.
SQLite serialises whole transactions, so this is PostgreSQL's alone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy.engine import make_url
from testkit import wait_until
from testkit.billing import BillingHarness, billing_harness


@pytest.fixture
async def billing(postgres_url: str) -> AsyncIterator[BillingHarness]:
    async with billing_harness(postgres_url, BillingHarness) as harness:
        yield harness
        await harness.assert_ledger_balances()


async def test_a_refund_waits_for_a_batch_holding_the_meter_instead_of_deadlocking(
    billing: BillingHarness, postgres_url: str
) -> None:
    await billing.open_account("A1", "M1", credit="10")
    await billing.flush()
    dsn = make_url(postgres_url).set(drivername="postgresql").render_as_string(False)
    batch = await asyncpg.connect(dsn)
    watcher = await asyncpg.connect(dsn)
    try:
        # What a batch of readings does first: lock the meters of the accounts it rates.
        rating = batch.transaction()
        await rating.start()
        await batch.execute("SELECT 1 FROM billing_meters WHERE account_id = 'A1' FOR UPDATE")
        # The refund empties the account, so it also cuts the meter (billing_meters.supply).
        refund = asyncio.create_task(
            billing.api.post(
                "/internal/accounts/A1/refunds",
                json={"amount": "10.00", "key": "r-1", "reason": "test", "operator": "test"},
            )
        )

        async def refund_waits_for_a_lock() -> bool:
            waiting: int = await watcher.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            return waiting == 1

        await wait_until(refund_waits_for_a_lock, timeout=30)
        # Then the batch moves the account's balance. Had the refund moved it before
        # waiting for the meter, each would now wait for the other.
        await batch.execute(
            "UPDATE billing_balances SET balance = balance - 1 WHERE ledger_account = 'tenant:A1'"
        )
        await batch.execute(
            "UPDATE billing_balances SET balance = balance + 1 WHERE ledger_account = 'tenant:A1'"
        )
        await rating.commit()
        answer = await asyncio.wait_for(refund, timeout=30)
    finally:
        await batch.close()
        await watcher.close()
    assert answer.status_code == 201, answer.text
    assert await billing.balance("A1") == Decimal("0.00")


async def test_two_refunds_racing_for_the_same_credit_cannot_both_take_it(
    billing: BillingHarness,
) -> None:
    await billing.open_account("A1", "M1", credit="10")
    await billing.flush()
    answers = await asyncio.gather(
        *(
            billing.api.post(
                "/internal/accounts/A1/refunds",
                json={"amount": "10.00", "key": key, "reason": "test", "operator": "test"},
            )
            for key in ("r-1", "r-2", "r-3")
        )
    )
    assert sorted(a.status_code for a in answers) == [201, 422, 422], [a.text for a in answers]
    assert await billing.balance("A1") == Decimal("0.00")
