"""Local-prepaid meters through the whole product, on both backends.

The same wiring as ``make run``: a meter that keeps its own credit is flagged through the
API, and the balance its account holds goes to it first; a counter top-up becomes a purchase
that billing numbers, control seals and retries, and the collector writes to the simulated
meter over Modbus TCP (FC16); the meter's count and credit come back in its readings and
agree with the ledger. A meter charged behind the ledger's back (its count or credit
bumped, as a cheat would) shows as anomalies through the API; a purchase made at the meter
by another vending system is surfaced and the next top-up counts past it; a purchase the
meter refuses is surfaced too, and an operator's re-sync recovers. A model that cannot take
purchases is not made local-prepaid.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from billing.tables import purchases
from prepaid_common.contracts import Envelope, PaymentSucceededV1, utcnow
from simulator import SimulatedMeter
from sqlalchemy import func, select
from standalone.app import Standalone
from testkit import wait_until
from testkit.collector import holds
from testkit.standalone import admin_client, running_product

LOCAL_PRICE = Decimal("1.5000")
MISMATCHES = {"purchase_count_mismatch", "local_credit_mismatch"}


@pytest.fixture
async def product(
    backend: tuple[str, str], bus_prefix: str, tmp_path: Path
) -> AsyncIterator[Standalone]:
    # Slow enough that the demo accounts' 100.00 lasts the test; fast enough that the
    # meter's own credit visibly moves between readings.
    async with running_product(
        backend, bus_prefix, tmp_path / "data", sim_dtus=1, sim_meters=4, sim_speed=60
    ) as running:
        yield running


@pytest.fixture
async def api(product: Standalone) -> AsyncIterator[httpx.AsyncClient]:
    async with admin_client(product) as client:
        yield client


async def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def local_meter(product: Standalone) -> tuple[str, SimulatedMeter]:
    """A reference-prepaid meter whose account has normal credit, made local-prepaid."""
    assert product.simulator is not None
    meter = next(
        m
        for m in product.simulator.meters
        if m.profile == "reference-prepaid"
        and f"ACC-{m.meter_id}" not in product.low_credit_accounts
    )
    # The meter's own state before it is flagged: 3 purchases taken, 20.00 yuan left.
    meter.purchase_count = 3
    meter.local_credit = Decimal("20.00")
    meter.local_price = LOCAL_PRICE
    return meter.meter_id, meter


async def local_view(api: httpx.AsyncClient, meter_id: str) -> dict[str, Any]:
    view: dict[str, Any] = await ok(await api.get(f"/api/v1/meters/{meter_id}/local-credit"))
    return view


async def anomaly_kinds(api: httpx.AsyncClient, meter_id: str) -> set[str]:
    page = await ok(await api.get("/api/v1/anomalies", params={"meter_id": meter_id}))
    return {item["kind"] for item in page["items"]}


async def flag_and_take_the_balance(
    api: httpx.AsyncClient, meter_id: str, meter: SimulatedMeter, **terms: str
) -> dict[str, Any]:
    """Make the meter local-prepaid; wait until the balance its account held (the demo's
    100.00 less what it used) reached it as purchase 4, and a reading after was compared."""
    await ok(
        await api.post(
            f"/api/v1/accounts/ACC-{meter_id}/meters",
            json={"meter_id": meter_id, "local_prepaid": True, **terms},
        )
    )
    await wait_until(holds(lambda: meter.purchase_count == 4), timeout=30)
    view = await compared_after(api, meter_id, 4)
    (held,) = view["purchases"]
    assert held["operation_key"] == "flagged:0"
    assert view["baseline"]["purchase_count"] == 3  # the meter's own count, read back
    return held


async def compared_after(api: httpx.AsyncClient, meter_id: str, count: int) -> dict[str, Any]:
    """Wait until a reading taken after purchase ``count`` was confirmed was compared."""

    async def probe() -> dict[str, Any] | None:
        view = await local_view(api, meter_id)
        done = [p for p in view["purchases"] if p["purchase_count"] == count]
        if not done or done[0]["status"] != "delivered" or view["meter"] is None:
            return None
        return view if view["meter"]["read_at"] > done[0]["confirmed_at"] else None

    return await wait_until(probe, timeout=30)


async def test_a_top_up_reaches_the_meter_and_a_cheat_shows(
    product: Standalone, api: httpx.AsyncClient
) -> None:
    meter_id, meter = local_meter(product)
    account = f"ACC-{meter_id}"
    binding = await ok(
        await api.post(
            f"/api/v1/accounts/{account}/meters",
            json={"meter_id": meter_id, "local_prepaid": True, "local_price": str(LOCAL_PRICE)},
        )
    )
    assert (binding["local_prepaid"], Decimal(binding["local_price"])) == (True, LOCAL_PRICE)

    async def baseline() -> dict[str, Any] | None:
        return (await local_view(api, meter_id))["baseline"]

    first = await wait_until(baseline, timeout=30)
    assert first["purchase_count"] == 3  # the meter's own count, read back
    assert Decimal(first["credit"]) <= Decimal("20.00")
    # The balance the account held when flagged went to the meter first, as purchase 4.
    await wait_until(holds(lambda: meter.purchase_count == 4), timeout=30)
    held = (await compared_after(api, meter_id, 4))["purchases"][0]
    assert (held["operation_key"], held["status"]) == ("flagged:0", "delivered")
    assert Decimal(0) < Decimal(held["amount"]) <= Decimal("100.00")

    await ok(
        await api.post(
            f"/api/v1/accounts/{account}/top-ups", json={"amount": "50.00", "receipt": "LP-1"}
        ),
        201,
    )

    await wait_until(holds(lambda: meter.purchase_count == 5), timeout=30)
    view = await compared_after(api, meter_id, 5)
    purchase, _held = view["purchases"]  # newest first
    assert (purchase["purchase_count"], Decimal(purchase["amount"])) == (5, Decimal("50.00"))
    assert purchase["status"] == "delivered"
    assert purchase["operation_key"].startswith("payment:")
    # The credit went up by the purchases; what the meter shows agrees with the ledger.
    assert view["meter"]["purchase_count"] == 5
    assert Decimal(view["meter"]["credit"]) > Decimal(held["amount"])
    assert not view["purchase_count_mismatch"]
    assert not view["local_credit_mismatch"]
    assert not (await anomaly_kinds(api, meter_id)) & MISMATCHES
    commands = (await ok(await api.get(f"/api/v1/meters/{meter_id}/commands")))["items"]
    credit = [c for c in commands if c["action"] == "credit"]
    assert [(c["status"], c["purchase_count"], Decimal(c["amount"])) for c in credit] == [
        ("succeeded", 5, Decimal("50.00")),
        ("succeeded", 4, Decimal(held["amount"])),
    ]

    # The same receipt again, and the same payment under a new message id: one purchase.
    await ok(
        await api.post(
            f"/api/v1/accounts/{account}/top-ups", json={"amount": "50.00", "receipt": "LP-1"}
        ),
        200,
    )
    payment_id = purchase["operation_key"].removeprefix("payment:")
    again = PaymentSucceededV1(
        payment_id=payment_id,
        account_id=account,
        amount=Decimal("50.00"),
        method="cash",
        reference="LP-1",
        at=utcnow(),
    )
    await product.billing.store.idempotent(product.billing.handlers.handle_payment)(
        Envelope.wrap(again, producer="test")
    )
    async with product.billing.store.sessionmaker() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(purchases)
            .where(purchases.c.meter_id == meter_id, purchases.c.operation_key.like("payment:%"))
        )
    assert count == 1
    assert meter.purchase_count == 5

    # A cheat charges the meter behind the ledger's back: one more purchase, 100.00 more.
    meter.purchase_count += 1
    meter.local_credit += Decimal("100.00")

    async def flagged() -> set[str] | None:
        kinds = await anomaly_kinds(api, meter_id)
        return kinds if kinds >= MISMATCHES else None

    await wait_until(flagged, timeout=30)
    view = await local_view(api, meter_id)
    assert view["purchase_count_mismatch"]
    assert view["local_credit_mismatch"]
    # Said once per mismatch, not at every reading.
    page = await ok(await api.get("/api/v1/anomalies", params={"meter_id": meter_id}))
    assert sorted(i["kind"] for i in page["items"] if i["kind"] in MISMATCHES) == sorted(MISMATCHES)


async def test_a_purchase_made_elsewhere_is_surfaced_and_the_next_top_up_counts_past_it(
    product: Standalone, api: httpx.AsyncClient
) -> None:
    """Issue 19 (a): another vending system sold the meter 10.00 at the meter (count 5); the
    tenant's 10.00 must reach the meter as purchase 6, not be answered "already have it"."""
    meter_id, meter = local_meter(product)
    account = f"ACC-{meter_id}"
    await flag_and_take_the_balance(api, meter_id, meter, local_price=str(LOCAL_PRICE))
    meter.take_purchase(Decimal("10.00"), 5)

    async def seen_elsewhere() -> dict[str, Any] | None:
        view = await local_view(api, meter_id)
        return view if view["purchase_count_mismatch"] else None

    await wait_until(seen_elsewhere, timeout=30)
    page = await ok(await api.get("/api/v1/anomalies", params={"meter_id": meter_id}))
    (elsewhere,) = [i for i in page["items"] if i["kind"] == "purchase_count_mismatch"]
    assert "meter shows purchase count 5; the ledger pushed up to 4" in elsewhere["detail"]

    before = meter.local_credit
    await ok(
        await api.post(
            f"/api/v1/accounts/{account}/top-ups", json={"amount": "10.00", "receipt": "LP-3"}
        ),
        201,
    )
    await wait_until(holds(lambda: meter.purchase_count == 6), timeout=30)
    # The meter added the tenant's money (less what it used meanwhile, at 1.50 a kWh).
    assert meter.local_credit > before + Decimal("9.00")
    view = await compared_after(api, meter_id, 6)
    purchase = view["purchases"][0]
    assert (purchase["purchase_count"], purchase["status"]) == (6, "delivered")
    assert purchase["operation_key"].startswith("payment:")
    # The counts agree again; the 10.00 sold elsewhere still stands out in the credit.
    assert not view["purchase_count_mismatch"]
    assert view["local_credit_mismatch"]
    page = await ok(await api.get("/api/v1/anomalies", params={"meter_id": meter_id}))
    assert sorted(i["kind"] for i in page["items"] if i["kind"] in MISMATCHES) == sorted(MISMATCHES)


async def test_a_refused_purchase_is_surfaced_and_a_resync_recovers(
    product: Standalone, api: httpx.AsyncClient
) -> None:
    meter_id, meter = local_meter(product)
    account = f"ACC-{meter_id}"
    await flag_and_take_the_balance(api, meter_id, meter)
    # The meter is reset to count 1 behind the ledger's back: purchase 5 is not its next.
    meter.purchase_count = 1
    await ok(
        await api.post(
            f"/api/v1/accounts/{account}/top-ups", json={"amount": "30.00", "receipt": "LP-2"}
        ),
        201,
    )

    async def refused() -> dict[str, Any] | None:
        view = await local_view(api, meter_id)
        bought = view["purchases"]
        return view if bought and bought[0]["status"] == "refused" else None

    view = await wait_until(refused, timeout=30)
    assert "meter refused purchase 5" in view["purchases"][0]["error"]
    assert "purchase_refused" in await anomaly_kinds(api, meter_id)
    assert meter.purchase_count == 1  # nothing taken
    commands = (await ok(await api.get(f"/api/v1/meters/{meter_id}/commands")))["items"]
    # Refused by the meter: failed at once, not retried.
    assert [(c["status"], c["attempts"]) for c in commands if c["action"] == "credit"] == [
        ("failed", 1),
        ("succeeded", 1),
    ]

    # An operator who checked the meter starts again from its own count.
    await ok(await api.post(f"/api/v1/meters/{meter_id}/local-credit/resync"))
    await wait_until(holds(lambda: meter.purchase_count == 2), timeout=30)
    view = await compared_after(api, meter_id, 2)
    assert view["purchases"][0]["status"] == "delivered"
    assert view["baseline"]["purchase_count"] == 1


async def test_a_model_without_credit_registers_is_not_made_local_prepaid(
    product: Standalone, api: httpx.AsyncClient
) -> None:
    """Issue 19 (d): its purchases would wait for ever; refused, naming what it lacks."""
    assert product.simulator is not None
    plain = next(m for m in product.simulator.meters if m.profile != "reference-prepaid")
    response = await api.post(
        f"/api/v1/accounts/ACC-{plain.meter_id}/meters",
        json={"meter_id": plain.meter_id, "local_prepaid": True},
    )
    assert response.status_code == 409, response.text
    problem = response.json()
    assert problem["code"] == "conflict"
    assert f"profile {plain.profile}" in problem["detail"]
    assert "lacks the credit capability" in problem["detail"]
    missing = await api.get(f"/api/v1/meters/{plain.meter_id}/local-credit")
    assert missing.status_code == 404
    # Binding it again without the flag is still fine.
    await ok(
        await api.post(
            f"/api/v1/accounts/ACC-{plain.meter_id}/meters", json={"meter_id": plain.meter_id}
        )
    )
