"""Billing's side of local-prepaid meters on a real database (SQLite and PostgreSQL): how
purchases are numbered, pushed one at a time, moved on by control's outcomes and by the
meter's own count and credit, what flagging a meter allows and pushes, and the mismatches
a meter's read-back raises."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

import pytest
from billing.domain import ledger
from billing.service import BillingService
from prepaid_common.bus import InProcessBus
from prepaid_common.contracts import (
    CommandOutcomeV1,
    CreditRequestedV1,
    ReadingV1,
    utcnow,
)
from prepaid_common.errors import Conflict
from testkit.billing import BillingHarness, billing_harness


class Harness(BillingHarness):
    """Billing alone, with the pushes it asks control for captured."""

    def __init__(self, service: BillingService, bus: InProcessBus) -> None:
        super().__init__(service, bus)
        self.pushes = self.capture("credit.requested.v1", CreditRequestedV1)
        self.clock = utcnow() + timedelta(seconds=1)

    async def open(
        self, account: str, *meters: str, debt_share: str = "0", credit: str = "0"
    ) -> None:
        # No credit unless asked: a balance held when a meter is flagged is pushed to it.
        await self.open_account(
            account,
            *meters,
            credit=credit,
            price="1.0000",
            warning_line=Decimal("0.00"),
            debt_share=Decimal(debt_share),
        )

    async def flag(self, meter: str, account: str, local: bool = True) -> None:
        await self.service.operations.meters.bind_meter(
            meter_id=meter,
            account_id=account,
            local_prepaid=local,
            local_price=Decimal("1.0") if local else None,
        )
        self.clock = utcnow() + timedelta(seconds=1)  # readings taken after the flag

    async def read(self, meter: str, kwh: str, count: int, credit: str) -> datetime:
        """Deliver a reading taken a minute after the last one."""
        self.clock += timedelta(minutes=1)
        await self.deliver(
            ReadingV1(
                meter_id=meter,
                dtu_id="D1",
                read_at=self.clock,
                energy_kwh=Decimal(kwh),
                local_credit=Decimal(credit),
                purchase_count=count,
            )
        )
        return self.clock

    async def answer(
        self,
        push: CreditRequestedV1,
        status: Literal["succeeded", "failed", "expired"],
        *,
        retryable: bool = True,
        error: str = "",
    ) -> None:
        await self.deliver(
            CommandOutcomeV1(
                command_id=f"cmd-{push.request_id}",
                meter_id=push.meter_id,
                action="credit",
                status=status,
                error=error,
                retryable=retryable,
                request_id=push.request_id,
                purchase_count=push.purchase_count,
                at=utcnow(),
            )
        )

    async def view(self, meter: str) -> dict[str, Any]:
        response = await self.api.get(f"/internal/meters/{meter}/local-credit")
        assert response.status_code == 200, response.text
        view: dict[str, Any] = response.json()
        return view

    async def statuses(self, meter: str) -> list[tuple[int | None, str]]:
        purchases = (await self.view(meter))["purchases"]
        return [(p["purchase_count"], p["status"]) for p in reversed(purchases)]

    async def anomalies(self, meter: str) -> list[str]:
        return [kind for kind, _detail in await self.anomaly_details(meter)]

    async def anomaly_details(self, meter: str) -> list[tuple[str, str]]:
        page = (await self.api.get("/internal/anomalies", params={"meter_id": meter})).json()
        return [(item["kind"], item["detail"]) for item in reversed(page["items"])]

    async def flags(self, meter: str) -> tuple[bool, bool]:
        view = await self.view(meter)
        return view["purchase_count_mismatch"], view["local_credit_mismatch"]


@pytest.fixture
async def billing(backend: tuple[str, str]) -> AsyncIterator[Harness]:
    database_url, _ = backend
    async with billing_harness(database_url, Harness) as harness:
        yield harness


async def test_purchases_wait_for_the_meters_count_and_go_one_at_a_time(
    billing: Harness,
) -> None:
    await billing.open("A1", "M1", debt_share="0.2")
    await billing.service.operations.money.post_operator_transaction(
        ledger.record_arrears(
            account_id="A1", amount=Decimal("100.00"), key="old", reason="old", operator="t"
        )
    )
    await billing.flag("M1", "A1")
    # Paid before the meter's count is known: queued without a count, nothing pushed.
    await billing.pay("A1", "50.00")
    assert await billing.statuses("M1") == [(None, "queued")]
    assert billing.pushes == []
    # The first reading after the flag is the baseline: 7 purchases taken already.
    await billing.read("M1", "100.000", 7, "5.00")
    assert await billing.statuses("M1") == [(8, "sent")]
    (first,) = billing.pushes
    # Only what reached the tenant's balance goes to the meter (20 % went to arrears).
    assert (first.purchase_count, first.amount) == (8, Decimal("40.00"))
    # A second top-up waits for the first: the meter takes only its count + 1.
    await billing.pay("A1", "10.00")
    assert await billing.statuses("M1") == [(8, "sent"), (9, "queued")]
    assert len(billing.pushes) == 1
    await billing.answer(first, "succeeded")
    assert await billing.statuses("M1") == [(8, "delivered"), (9, "sent")]
    assert (billing.pushes[-1].purchase_count, billing.pushes[-1].amount) == (9, Decimal("8.00"))
    # The meter's count includes 9 before control says so: the reading confirms it.
    await billing.read("M1", "100.000", 9, "53.00")
    assert await billing.statuses("M1") == [(8, "delivered"), (9, "delivered")]
    await billing.answer(billing.pushes[-1], "succeeded")  # late: changes nothing
    assert await billing.statuses("M1") == [(8, "delivered"), (9, "delivered")]
    assert await billing.anomalies("M1") == []


async def test_a_failed_or_expired_push_goes_again_at_the_next_reading_with_its_count(
    billing: Harness,
) -> None:
    await billing.open("A1", "M1")
    await billing.flag("M1", "A1")
    await billing.read("M1", "100.000", 0, "0.00")
    await billing.pay("A1", "20.00")
    first = billing.pushes[-1]
    await billing.answer(first, "failed", error="DTU offline")
    assert await billing.statuses("M1") == [(1, "queued")]
    assert len(billing.pushes) == 1  # not at once: the meter is not reachable
    await billing.read("M1", "100.000", 0, "0.00")
    second = billing.pushes[-1]
    assert (second.purchase_count, second.amount) == (1, Decimal("20.00"))
    assert second.request_id != first.request_id
    await billing.answer(second, "expired")
    await billing.read("M1", "100.000", 0, "0.00")
    assert len(billing.pushes) == 3
    await billing.answer(billing.pushes[-1], "succeeded")
    view = await billing.view("M1")
    assert view["purchases"][0]["pushes"] == 3
    assert await billing.statuses("M1") == [(1, "delivered")]
    # An outcome for a push that was asked again since is ignored.
    await billing.answer(first, "failed", retryable=False, error="late")
    assert await billing.statuses("M1") == [(1, "delivered")]


async def test_a_refused_purchase_stops_the_queue_until_a_resync(billing: Harness) -> None:
    await billing.open("A1", "M1")
    await billing.flag("M1", "A1")
    await billing.read("M1", "100.000", 3, "0.00")
    await billing.pay("A1", "20.00")
    await billing.answer(
        billing.pushes[-1], "failed", retryable=False, error="meter refused purchase 4"
    )
    await billing.pay("A1", "5.00")
    await billing.read("M1", "100.000", 3, "0.00")
    assert await billing.statuses("M1") == [(4, "refused"), (5, "queued")]
    assert len(billing.pushes) == 1
    assert await billing.anomalies("M1") == ["purchase_refused"]
    response = await billing.api.post("/internal/meters/M1/local-credit/resync")
    assert response.status_code == 200, response.text
    assert await billing.statuses("M1") == [(None, "queued"), (None, "queued")]
    # The meter was really at 10: counted from there, in the order they were paid.
    await billing.read("M1", "100.000", 10, "0.00")
    assert await billing.statuses("M1") == [(11, "sent"), (12, "queued")]


async def test_one_local_prepaid_meter_per_account_and_a_new_flag_counts_afresh(
    billing: Harness,
) -> None:
    await billing.open("A1", "M1", "M2")
    await billing.flag("M1", "A1")
    with pytest.raises(Conflict, match="already has local-prepaid meter M1"):
        await billing.flag("M2", "A1")
    await billing.read("M1", "100.000", 1, "0.00")
    await billing.pay("A1", "20.00")
    await billing.answer(billing.pushes[-1], "succeeded")
    await billing.pay("A1", "5.00")  # pushed as 3, then the flag is taken off
    await billing.flag("M1", "A1", local=False)
    response = await billing.api.get("/internal/meters/M1/local-credit")
    assert response.status_code == 404
    # Flagged again (the meter was reset meanwhile): its old purchases are not held
    # against its new count, and the 25.00 the account holds now goes to it first.
    await billing.flag("M1", "A1")
    await billing.read("M1", "100.000", 0, "0.00")
    assert (billing.pushes[-1].purchase_count, billing.pushes[-1].amount) == (1, Decimal("25.00"))
    await billing.pay("A1", "7.00")
    # Purchase 3 was cancelled with the flag; the ledger keeps its money.
    assert await billing.statuses("M1") == [
        (2, "delivered"),
        (3, "cancelled"),
        (1, "sent"),
        (2, "queued"),
    ]
    await billing.read("M1", "100.000", 0, "0.00")
    assert await billing.anomalies("M1") == []
    bindings = (await billing.api.get("/internal/meter-bindings")).json()["items"]
    assert {(b["meter_id"], b["local_prepaid"]) for b in bindings} == {
        ("M1", True),
        ("M2", False),
    }


async def test_a_reading_taken_before_the_flag_is_no_baseline(billing: Harness) -> None:
    await billing.open("A1", "M1")
    before = utcnow() - timedelta(seconds=5)
    await billing.flag("M1", "A1")
    await billing.deliver(
        ReadingV1(
            meter_id="M1",
            dtu_id="D1",
            read_at=before,
            energy_kwh=Decimal("100.000"),
            local_credit=Decimal("1.00"),
            purchase_count=2,
        )
    )
    assert (await billing.view("M1"))["baseline"] is None
    await billing.read("M1", "100.100", 5, "1.00")
    assert (await billing.view("M1"))["baseline"]["purchase_count"] == 5


async def test_a_purchase_made_elsewhere_is_surfaced_and_the_next_push_counts_past_it(
    billing: Harness,
) -> None:
    """Issue 19 (a): a purchase made at the meter by another vending system took count 3;
    the tenant's top-up must go out as 4 (a 3 is answered "already have it" and adds nothing)."""
    await billing.open("A1", "M1")
    await billing.flag("M1", "A1")
    await billing.read("M1", "100.000", 2, "5.00")
    # Someone else sold the meter 10.00 under count 3.
    await billing.read("M1", "100.000", 3, "15.00")
    assert await billing.anomaly_details("M1") == [
        (
            "purchase_count_mismatch",
            "meter shows purchase count 3; the ledger pushed up to 2 (1 purchase made elsewhere)",
        ),
        (
            "local_credit_mismatch",
            "meter shows 15.00 yuan of credit; the ledger allows at most 5.00 "
            "(purchases 0.00 since count 2, 0.00 used)",
        ),
    ]
    await billing.pay("A1", "10.00")
    assert (billing.pushes[-1].purchase_count, billing.pushes[-1].amount) == (4, Decimal("10.00"))
    await billing.answer(billing.pushes[-1], "succeeded")
    await billing.read("M1", "101.000", 4, "24.00")  # 1 kWh at 1.00 used
    assert await billing.statuses("M1") == [(4, "delivered")]
    # The counts agree again; the 10.00 sold elsewhere still stands out, said once.
    assert await billing.flags("M1") == (False, True)
    assert await billing.anomalies("M1") == ["purchase_count_mismatch", "local_credit_mismatch"]


async def test_already_having_the_count_is_delivery_only_if_the_credit_shows_it(
    billing: Harness,
) -> None:
    """Issue 19 (a): the collector does not write a purchase whose count the meter shows
    already; the next reading's credit says whether the meter has our money."""
    already = "meter already shows purchase count {0}; purchase {0} not written"
    await billing.open("A1", "M1")
    await billing.open("A2", "M3")
    await billing.flag("M1", "A1")
    await billing.flag("M3", "A2")
    # M1: our first attempt wrote purchase 3 but its answer was lost; a retry found 3 there.
    await billing.read("M1", "100.000", 2, "5.00")
    await billing.pay("A1", "10.00")
    await billing.answer(billing.pushes[-1], "failed", error=already.format(3))
    assert await billing.statuses("M1") == [(3, "queued")]
    await billing.read("M1", "100.500", 3, "14.50")  # +10.00, 0.5 kWh used
    assert await billing.statuses("M1") == [(3, "delivered")]
    assert len(billing.pushes) == 1  # never pushed twice: the money is there
    assert await billing.anomalies("M1") == []
    # M3: between its last reading and our push, someone else sold it 3.00 under count 3.
    await billing.read("M3", "100.000", 2, "5.00")
    await billing.pay("A2", "10.00")
    await billing.pay("A2", "4.00")
    first = billing.pushes[-1]
    assert (first.meter_id, first.purchase_count) == ("M3", 3)
    await billing.answer(first, "failed", error=already.format(3))
    await billing.read("M3", "100.000", 3, "8.00")
    # Not ours: counted again above the meter's count, and pushed at once; 4.00 behind it.
    assert await billing.statuses("M3") == [(4, "sent"), (5, "queued")]
    again = billing.pushes[-1]
    assert (again.purchase_count, again.amount) == (4, Decimal("10.00"))
    view = await billing.view("M3")
    assert "count 3 reached without its 10.00 yuan" in view["purchases"][-1]["error"]
    assert await billing.anomalies("M3") == ["purchase_count_mismatch", "local_credit_mismatch"]
    await billing.answer(first, "succeeded")  # a late word on the old push changes nothing
    assert await billing.statuses("M3") == [(4, "sent"), (5, "queued")]
    await billing.answer(again, "succeeded")
    assert billing.pushes[-1].purchase_count == 5
    await billing.answer(billing.pushes[-1], "succeeded")
    await billing.read("M3", "100.000", 5, "22.00")
    assert await billing.statuses("M3") == [(4, "delivered"), (5, "delivered")]
    assert await billing.flags("M3") == (False, True)  # the 3.00 sold elsewhere
    assert await billing.anomalies("M3") == ["purchase_count_mismatch", "local_credit_mismatch"]


async def test_credit_below_the_ledger_is_a_mismatch_once_per_mismatch(billing: Harness) -> None:
    """Issue 19 (b): a meter that shows less credit than the ledger allows (a purchase it never
    added, or debiting more than its price) is flagged, not only one that shows more."""
    await billing.open("A1", "M1")
    await billing.flag("M1", "A1")  # debits 1.00 a kWh
    await billing.read("M1", "100.000", 0, "10.00")
    await billing.read("M1", "100.100", 0, "9.80")  # 9.90 expected: within the tolerance
    assert await billing.anomalies("M1") == []
    await billing.read("M1", "100.200", 0, "7.00")
    assert await billing.anomaly_details("M1") == [
        (
            "local_credit_mismatch",
            "meter shows 7.00 yuan of credit; the ledger expects 9.80 "
            "(purchases 0.00 since count 0, 0.20 used), 2.80 missing",
        )
    ]
    assert await billing.flags("M1") == (False, True)
    await billing.read("M1", "100.300", 0, "6.90")  # still short: not said again
    assert await billing.anomalies("M1") == ["local_credit_mismatch"]
    await billing.read("M1", "100.300", 0, "9.70")  # agrees again
    assert await billing.flags("M1") == (False, False)
    await billing.read("M1", "100.300", 0, "5.00")  # a new mismatch
    assert await billing.anomalies("M1") == ["local_credit_mismatch", "local_credit_mismatch"]
    # Above, as before.
    await billing.read("M1", "100.300", 0, "9.70")
    await billing.read("M1", "100.300", 0, "20.00")
    assert await billing.anomalies("M1") == ["local_credit_mismatch"] * 3


async def test_flagging_pushes_the_balance_the_account_holds_once(billing: Harness) -> None:
    """Issue 19 (c): money paid before a meter was made local-prepaid reaches the meter."""
    await billing.open("A1", "M1", credit="100.00")
    await billing.open("A2", "M2")
    body = {"account_id": "A1", "meter_id": "M1", "local_prepaid": True, "local_price": "1.0"}
    response = await billing.api.post("/internal/meter-bindings", json=body)
    assert response.status_code == 200, response.text
    billing.clock = utcnow() + timedelta(seconds=1)
    view = await billing.view("M1")
    (held,) = view["purchases"]
    assert (held["operation_key"], Decimal(held["amount"])) == ("flagged:0", Decimal("100.00"))
    assert (held["purchase_count"], held["status"]) == (None, "queued")
    # Posting the binding again changes the price only: nothing pushed twice.
    body["local_price"] = "1.2"
    response = await billing.api.post("/internal/meter-bindings", json=body)
    assert response.status_code == 200, response.text
    assert len((await billing.view("M1"))["purchases"]) == 1
    await billing.read("M1", "100.000", 5, "0.00")
    assert [(p.purchase_count, p.amount) for p in billing.pushes] == [(6, Decimal("100.00"))]
    await billing.answer(billing.pushes[-1], "succeeded")
    await billing.pay("A1", "20.00")
    assert [(p.purchase_count, p.amount) for p in billing.pushes][-1] == (7, Decimal("20.00"))
    assert await billing.statuses("M1") == [(6, "delivered"), (7, "sent")]
    # An account holding nothing pushes nothing.
    await billing.flag("M2", "A2")
    assert (await billing.view("M2"))["purchases"] == []


async def test_without_a_price_a_count_passed_by_purchases_made_elsewhere_waits_for_an_operator(
    billing: Harness,
) -> None:
    await billing.open("A1", "M1")
    await billing.service.operations.meters.bind_meter(
        meter_id="M1", account_id="A1", local_prepaid=True
    )
    billing.clock = utcnow() + timedelta(seconds=1)
    await billing.read("M1", "100.000", 2, "5.00")
    await billing.pay("A1", "10.00")
    error = "meter already shows purchase count 4; purchase 3 not written"
    await billing.answer(billing.pushes[-1], "failed", error=error)
    # Sold twice elsewhere: whether 3 is ours, only the credit at the meter's own price says.
    await billing.read("M1", "100.000", 4, "20.00")
    assert await billing.statuses("M1") == [(3, "refused")]
    assert await billing.anomalies("M1") == [
        "purchase_count_mismatch",
        "local_credit_mismatch",  # 20.00 shows more than even our 10.00 could give
        "purchase_refused",
    ]
    view = await billing.view("M1")
    assert "without a local_price its credit cannot show" in view["purchases"][0]["error"]
    await billing.pay("A1", "5.00")
    await billing.read("M1", "100.000", 4, "20.00")
    assert len(billing.pushes) == 1  # neither pushed again nor the next one pushed
    response = await billing.api.post("/internal/meters/M1/local-credit/resync")
    assert response.status_code == 200, response.text
    await billing.read("M1", "100.000", 4, "20.00")
    assert await billing.statuses("M1") == [(5, "sent"), (6, "queued")]
