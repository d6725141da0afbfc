"""Billing's reports on the database (SQLite and PostgreSQL): a group's energy report reads
the same few queries however many accounts the group holds, and the sales report's cash
against the shifts sees cash taken before the span and a movement posted into a closed
shift's time."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pytest
from billing.store.reference import load_policy
from billing.tables import transactions
from prepaid_common.contracts import PaymentSucceededV1, utcnow
from sqlalchemy import event, update
from testkit.billing import BillingHarness, billing_harness, reading

NOW = utcnow().replace(microsecond=0)


@pytest.fixture
async def billing(backend: tuple[str, str]) -> AsyncIterator[BillingHarness]:
    async with billing_harness(backend[0], BillingHarness) as harness:
        yield harness


@contextmanager
def statements(billing: BillingHarness) -> Iterator[list[str]]:
    """Collect the SQL statements billing runs meanwhile (not BEGIN)."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if not statement.startswith("BEGIN"):
            seen.append(statement)

    engine = billing.service.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def open_block(billing: BillingHarness, first: int, count: int) -> None:
    """Accounts in block-a, each with two meters that used 4 and 2 kWh."""
    consume = billing.service.store.idempotent_batch(billing.service.handlers.handle_readings)
    for index in range(first, first + count):
        account = f"A{index:03d}"
        await billing.open_account(account, f"{account}-M1", f"{account}-M2", groups=["block-a"])
        await consume(
            [
                reading(f"{account}-M1", NOW - timedelta(hours=2), "0"),
                reading(f"{account}-M1", NOW - timedelta(hours=1), "4"),
                reading(f"{account}-M2", NOW - timedelta(hours=2), "10"),
                reading(f"{account}-M2", NOW - timedelta(hours=1), "12"),
            ]
        )


async def group_queries(billing: BillingHarness) -> tuple[int, dict[str, Any]]:
    with statements(billing) as seen:
        response = await billing.api.get("/internal/group-usage", params={"group": "block-a"})
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return len(seen), report


async def test_the_group_report_takes_the_same_queries_for_2_or_12_accounts(
    billing: BillingHarness,
) -> None:
    await open_block(billing, 0, 2)
    await billing.open_account("B000", groups=["block-b"])
    few, report = await group_queries(billing)
    assert [a["account_id"] for a in report["accounts"]] == ["A000", "A001"]
    await open_block(billing, 2, 10)
    many, report = await group_queries(billing)
    assert len(report["accounts"]) == 12
    assert Decimal(report["metered_kwh"]) == 12 * Decimal(6)
    assert Decimal(report["cost"]) == 12 * Decimal("6.00")  # flat 1.00 yuan/kWh
    # The group's accounts, their usage, their meters bound now: not one query per account.
    assert few == many <= 3
    missing = await billing.api.get("/internal/group-usage", params={"group": "block-z"})
    assert missing.status_code == 404


async def pay(billing: BillingHarness, payment_id: str, amount: str, *, by: str) -> None:
    await billing.deliver(
        PaymentSucceededV1(
            payment_id=payment_id,
            account_id="S1",
            amount=Decimal(amount),
            method="cash",
            reference=payment_id,
            at=utcnow(),
            operator=by,
        )
    )


async def date_payment(billing: BillingHarness, payment_id: str, at: datetime) -> None:
    # The ledger dates a posting when it is posted; a test moves one in time on purpose.
    async with billing.service.store.sessionmaker() as session:
        await session.execute(
            update(transactions)
            .where(transactions.c.operation_key == f"payment:{payment_id}")
            .values(created_at=at)
        )
        await session.commit()


async def cash_of(billing: BillingHarness, day: date) -> dict[str, Any]:
    span = {"from": day.isoformat(), "to": day.isoformat()}
    response = await billing.api.get("/internal/sales", params=span)
    assert response.status_code == 200, response.text
    cash: dict[str, Any] = response.json()["cash"]
    return cash


def amounts(cash: dict[str, Any]) -> tuple[Decimal, ...]:
    names = ("counter_cash", "expected_cash", "before_span", "not_yet_closed", "outside_shifts")
    return tuple(Decimal(cash[name]) for name in names)


async def test_the_cash_before_the_span_and_a_posting_into_a_closed_shift(
    billing: BillingHarness,
) -> None:
    await billing.open_account("S1")
    async with billing.service.store.sessionmaker() as session:
        zone = (await load_policy(session)).zone
    today = datetime.now(zone).date()
    midnight = datetime.combine(today, time(), zone)
    # Wang's shift opened yesterday (a first shift: no close before it) and took 30.00 then.
    await pay(billing, "W-1", "30.00", by="wang")
    await date_payment(billing, "W-1", midnight - timedelta(hours=1))
    await pay(billing, "W-2", "50.00", by="wang")
    shift = await billing.service.operations.site_office.close_shift(
        cashier="wang", counted_cash=Decimal("75.00"), note="short"
    )
    assert shift.expected_cash == Decimal("80.00")
    cash = await cash_of(billing, today)
    assert amounts(cash) == (
        Decimal("50.00"),  # today's cash at the counter
        Decimal("80.00"),  # the shift's, 30.00 of it from yesterday
        Decimal("30.00"),
        Decimal("0.00"),
        Decimal("0.00"),
    )
    assert (Decimal(cash["difference"]), cash["agrees"]) == (Decimal("-5.00"), True)
    # Yesterday's report: the cash, in no shift closed that day.
    yesterday = await cash_of(billing, today - timedelta(days=1))
    assert (amounts(yesterday)[0], amounts(yesterday)[3], yesterday["shifts"]) == (
        Decimal("30.00"),
        Decimal("30.00"),
        [],
    )
    assert yesterday["agrees"] is True
    # Taken after the close: not yet closed, and still agreeing.
    await pay(billing, "W-3", "20.00", by="wang")
    cash = await cash_of(billing, today)
    assert (amounts(cash)[3], cash["agrees"]) == (Decimal("20.00"), True)
    # The same money dated inside the closed shift (posted while the close was being
    # written): the ledger now holds 100.00 in a shift that recorded 80.00.
    assert shift.closed_at is not None
    await date_payment(billing, "W-3", shift.closed_at - timedelta(milliseconds=1))
    cash = await cash_of(billing, today)
    assert (amounts(cash)[3], cash["agrees"]) == (Decimal("0.00"), False)
