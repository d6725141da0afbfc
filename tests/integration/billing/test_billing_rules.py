"""Billing rules against a real database (SQLite and PostgreSQL): tariffs, prepaid rules,
audited money movements, meter swaps, reports. Every scenario ends with a balanced ledger."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pytest
from billing.domain import ledger
from billing.domain.supply import FriendlyWindow, SitePolicy
from billing.domain.tariffs import TariffDefinition, Tier
from billing.service import BillingService
from billing.store.balances import arrears_of
from prepaid_common.bus import InProcessBus
from prepaid_common.contracts import (
    AnomalyV1,
    Envelope,
    ReadingV1,
    RelayRequestedV1,
    utcnow,
)
from prepaid_common.errors import Conflict, Invalid
from testkit.billing import BillingHarness, billing_harness

NOW = utcnow().replace(microsecond=0)


class Harness(BillingHarness):
    """Billing alone on a real database, with the relay requests it emits captured."""

    def __init__(self, service: BillingService, bus: InProcessBus) -> None:
        super().__init__(service, bus)
        self.requests = self.capture("relay.requested.v1", RelayRequestedV1)

    async def read(self, meter: str, at: datetime, kwh: str, **tou: str) -> None:
        await self.deliver(
            ReadingV1(
                meter_id=meter,
                dtu_id="D1",
                read_at=at,
                energy_kwh=Decimal(kwh),
                tou_kwh={k: Decimal(v) for k, v in tou.items()} or None,
            )
        )

    async def open(self, account: str, meter: str, *, credit: str = "0", **terms: Any) -> None:
        await self.open_account(account, meter, credit=credit, **terms)
        await self.flush()

    def actions(self, meter: str) -> list[str]:
        return [r.action for r in self.requests if r.meter_id == meter]


@pytest.fixture
async def billing(backend: tuple[str, str]) -> AsyncIterator[Harness]:
    database_url, _ = backend
    async with billing_harness(database_url, Harness) as harness:
        yield harness
        # Every scenario ends with a balanced ledger.
        await harness.assert_ledger_balances()


async def test_tou_tariff_prices_the_meters_own_registers(billing: Harness) -> None:
    definition = TariffDefinition(
        kind="tou",
        period_prices={
            "sharp": Decimal("1.5"),
            "peak": Decimal("1.2"),
            "flat": Decimal("0.8"),
            "valley": Decimal("0.3"),
        },
    )
    await billing.service.operations.tariffs.define_tariff(
        tariff_id="tou-1", name="TOU", definition=definition, effective_from=None, operator="t"
    )
    await billing.open("A1", "M1", credit="100", tariff_id="tou-1")
    await billing.read("M1", NOW, "10", sharp="1", peak="2", flat="3", valley="4")
    await billing.read(
        "M1", NOW + timedelta(hours=1), "20", sharp="2", peak="4", flat="6", valley="8"
    )
    # 1 sharp, 2 peak, 3 flat, 4 valley kWh.
    expected = Decimal("1.5") + 2 * Decimal("1.2") + 3 * Decimal("0.8") + 4 * Decimal("0.3")
    assert await billing.balance("A1") == Decimal("100") - expected


async def test_a_scheduled_version_prices_only_what_comes_after_it(billing: Harness) -> None:
    await billing.service.operations.tariffs.define_tariff(
        tariff_id="t",
        name="T",
        definition=TariffDefinition(kind="flat", price_per_kwh=Decimal(1)),
        effective_from=None,
        operator="t",
    )
    change = utcnow() + timedelta(hours=1)
    await billing.service.operations.tariffs.define_tariff(
        tariff_id="t",
        name="T",
        definition=TariffDefinition(
            kind="tiered",
            price_per_kwh=Decimal(2),
            tiers=[Tier(up_to_kwh=Decimal(5)), Tier(surcharge=Decimal(1))],
        ),
        effective_from=change,
        operator="t",
    )
    await billing.open("A1", "M1", credit="100", tariff_id="t")
    await billing.read("M1", change - timedelta(hours=1), "0")
    await billing.read("M1", change, "3")  # 3 kWh at the old price
    # 10 kWh more; tiers count the whole cycle, so 3 + 2 kWh fill the first band and
    # the other 8 kWh carry the surcharge.
    await billing.read("M1", change + timedelta(hours=1), "13")
    assert await billing.balance("A1") == Decimal(100) - 3 - (10 * 2 + 8)
    tariff = (await billing.api.get("/internal/tariffs/t")).json()
    assert len(tariff["versions"]) == 2
    with pytest.raises(Invalid):
        await billing.service.operations.tariffs.define_tariff(
            tariff_id="t",
            name="T",
            definition=TariffDefinition(kind="flat", price_per_kwh=Decimal(1)),
            effective_from=utcnow() - timedelta(days=1),
            operator="t",
        )


async def test_the_same_reading_twice_charges_once(billing: Harness) -> None:
    await billing.open("A1", "M1", credit="10")
    first = ReadingV1(meter_id="M1", dtu_id="D", read_at=NOW, energy_kwh=Decimal(1))
    second = ReadingV1(
        meter_id="M1", dtu_id="D", read_at=NOW + timedelta(minutes=5), energy_kwh=Decimal(3)
    )
    await billing.deliver(first)
    envelope = Envelope.wrap(second, producer="test")
    consume = billing.service.store.idempotent(billing.service.handlers.handle_reading)
    await consume(envelope)
    await consume(envelope)  # a redelivery
    await billing.deliver(second)  # the same reading under a new message id
    assert await billing.balance("A1") == Decimal("8.00")


async def test_trip_at_the_cut_line_with_overdraft_and_close_on_top_up(billing: Harness) -> None:
    await billing.open("A1", "M1", credit="2", overdraft_limit=Decimal("3.00"))
    await billing.read("M1", NOW, "0")
    await billing.read("M1", NOW + timedelta(minutes=10), "4")  # balance -2: within overdraft
    assert billing.actions("M1") == []
    await billing.read("M1", NOW + timedelta(minutes=20), "5")  # balance -3: at the cut line
    assert billing.actions("M1") == ["trip"]
    await billing.pay("A1", "1.00")  # -2: above the cut line again, on emergency credit
    assert billing.actions("M1") == ["trip", "close"]
    events = (await billing.api.get("/internal/supply-events", params={"meter_id": "M1"})).json()
    assert [e["action"] for e in events["items"]] == ["close", "trip"]
    assert "cut line" in events["items"][1]["reason"]


async def test_hold_power_prevents_a_cut_until_released(billing: Harness) -> None:
    await billing.open("A1", "M1", credit="1")
    hold = await billing.service.operations.supply.place_hold(
        scope="meter", target="M1", until=None, reason="hospital ward", operator="t"
    )
    await billing.read("M1", NOW, "0")
    await billing.read("M1", NOW + timedelta(minutes=10), "5")
    assert billing.actions("M1") == []
    await billing.service.operations.supply.release_hold(hold_id=hold)
    await billing.flush()
    assert billing.actions("M1") == ["trip"]


async def test_an_expired_hold_no_longer_protects(billing: Harness) -> None:
    await billing.open("A1", "M1", credit="1")
    start = utcnow()
    await billing.service.operations.supply.place_hold(
        scope="global", target="*", until=start + timedelta(hours=1), reason="x", operator="t"
    )
    await billing.read("M1", start, "0")
    await billing.read("M1", start + timedelta(minutes=1), "5")
    assert billing.actions("M1") == []
    await billing.service.calendar.sweep(now=start + timedelta(hours=2))
    await billing.flush()
    assert billing.actions("M1") == ["trip"]


async def test_group_shedding_spares_protected_accounts(billing: Harness) -> None:
    await billing.open("A1", "M1", credit="50", groups=["building:A"])
    await billing.open("A2", "M2", credit="50", groups=["building:A"], protected=True)
    await billing.open("A3", "M3", credit="50", groups=["building:B"])
    shed = await billing.service.operations.supply.start_shed(
        group="building:A", reason="grid limit", operator="t"
    )
    await billing.flush()
    assert (billing.actions("M1"), billing.actions("M2"), billing.actions("M3")) == (
        ["trip"],
        [],
        [],
    )
    await billing.service.operations.supply.end_shed(shed_id=shed)
    await billing.flush()
    assert billing.actions("M1") == ["trip", "close"]


async def test_friendly_hours_defer_the_cut_until_they_end(billing: Harness) -> None:
    await billing.service.operations.supply.set_policy(
        policy=SitePolicy(friendly_windows=[FriendlyWindow(start=time(0), end=time(23, 59, 59))])
    )
    await billing.open("A1", "M1", credit="1")
    await billing.read("M1", NOW, "0")
    await billing.read("M1", NOW + timedelta(minutes=1), "5")
    assert await billing.balance("A1") == Decimal("-4.00")
    assert billing.actions("M1") == []
    await billing.service.operations.supply.set_policy(policy=SitePolicy())
    await billing.service.calendar.sweep()
    await billing.flush()
    assert billing.actions("M1") == ["trip"]


async def test_postpaid_accounts_are_never_cut_and_get_a_statement(billing: Harness) -> None:
    await billing.open("P1", "M1", mode="postpaid")
    await billing.read("M1", NOW, "0")
    await billing.read("M1", NOW + timedelta(hours=1), "30")
    assert billing.actions("M1") == []
    assert await billing.balance("P1") == Decimal("-30.00")
    month = NOW.astimezone(SitePolicy().zone).strftime("%Y-%m")
    statement = (await billing.api.get(f"/internal/accounts/P1/statements/{month}")).json()
    assert Decimal(statement["closing_balance"]) == Decimal("-30.00")
    assert Decimal(statement["amount_due"]) == Decimal("30.00")
    assert Decimal(statement["movements"]["consumption"]) == Decimal("-30.00")
    dunning = (await billing.api.get("/internal/dunning")).json()["items"]
    assert [(d["account_id"], Decimal(d["amount_due"])) for d in dunning] == [
        ("P1", Decimal("30.00"))
    ]


async def test_debt_is_recovered_from_top_ups_and_daily(billing: Harness) -> None:
    await billing.open(
        "A1", "M1", credit="5", debt_share=Decimal("0.2"), debt_daily=Decimal("1.00")
    )
    first = await billing.service.operations.money.post_operator_transaction(
        ledger.record_arrears(
            account_id="A1",
            amount=Decimal("12.00"),
            key="old-bill",
            reason="2025 bill",
            operator="t",
        )
    )
    # The same operation key with the same terms is a replay: the first id, nothing twice.
    again = await billing.service.operations.money.post_operator_transaction(
        ledger.record_arrears(
            account_id="A1", amount=Decimal("12.00"), key="old-bill", reason="x", operator="t"
        )
    )
    assert again == first
    with pytest.raises(Conflict):  # the same operation key with another amount
        await billing.service.operations.money.post_operator_transaction(
            ledger.record_arrears(
                account_id="A1", amount=Decimal("13.00"), key="old-bill", reason="x", operator="t"
            )
        )
    await billing.pay("A1", "50.00")  # 10.00 of it goes to the debt
    assert await billing.balance("A1") == Decimal("45.00")
    async with billing.service.store.sessionmaker() as session:
        assert await arrears_of(session, "A1") == Decimal("-2.00")
    await billing.service.calendar.sweep()
    await billing.service.calendar.sweep()  # once a day, however often the sweep runs
    assert await billing.balance("A1") == Decimal("44.00")
    async with billing.service.store.sessionmaker() as session:
        assert await arrears_of(session, "A1") == Decimal("-1.00")


async def test_anti_hoarding_cap_refuses_a_top_up_before_money_is_taken(billing: Harness) -> None:
    await billing.open("A1", "M1", credit="80", balance_cap=Decimal("100.00"))
    await billing.service.operations.money.check_top_up(account_id="A1", amount=Decimal("20.00"))
    with pytest.raises(Conflict, match="cap"):
        await billing.service.operations.money.check_top_up(
            account_id="A1", amount=Decimal("20.01")
        )


async def test_refunds_and_reversals_are_audited_new_transactions(billing: Harness) -> None:
    await billing.open("A1", "M1", credit="30")
    with pytest.raises(Invalid, match="exceeds"):
        await billing.service.operations.money.post_operator_transaction(
            ledger.refund(
                account_id="A1",
                amount=Decimal("31.00"),
                method="cash",
                key="r1",
                reason="x",
                operator="t",
            )
        )
    refund_id = await billing.service.operations.money.post_operator_transaction(
        ledger.refund(
            account_id="A1",
            amount=Decimal("10.00"),
            method="cash",
            key="r1",
            reason="moving out",
            operator="alice",
        )
    )
    assert await billing.balance("A1") == Decimal("20.00")
    await billing.service.operations.money.reverse(
        transaction_id=refund_id, reason="refund entered twice", operator="bob"
    )
    assert await billing.balance("A1") == Decimal("30.00")
    with pytest.raises(Conflict):
        await billing.service.operations.money.reverse(
            transaction_id=refund_id, reason="again", operator="bob"
        )
    lines = (await billing.api.get("/internal/accounts/A1/ledger")).json()["items"]
    assert [(line["kind"], line["operator"]) for line in lines[:2]] == [
        ("reversal", "bob"),
        ("refund", "alice"),
    ]
    assert lines[0]["reverses"] == refund_id


async def test_meter_swap_charges_the_old_final_reading_and_continues(billing: Harness) -> None:
    await billing.open("A1", "OLD", credit="100")
    await billing.read("OLD", NOW, "1000")
    await billing.read("OLD", NOW + timedelta(minutes=5), "1010")
    await billing.service.operations.meters.swap_meter(
        old_meter_id="OLD",
        new_meter_id="NEW",
        old_final_kwh=Decimal("1012"),
        new_start_kwh=Decimal("0"),
        operator="t",
    )
    assert await billing.balance("A1") == Decimal("88.00")
    await billing.read("NEW", utcnow() + timedelta(minutes=5), "3")
    assert await billing.balance("A1") == Decimal("85.00")
    # A reading from the old meter is no longer billed.
    await billing.read("OLD", utcnow() + timedelta(minutes=6), "1020")
    assert await billing.balance("A1") == Decimal("85.00")
    history = (await billing.api.get("/internal/meters/NEW/history")).json()["items"]
    assert [(h["event"], Decimal(h["final_kwh"])) for h in history] == [("swapped_in", Decimal(0))]


async def test_a_register_going_backwards_is_an_anomaly_not_a_credit(billing: Harness) -> None:
    await billing.open("A1", "M1", credit="10")
    await billing.read("M1", NOW, "500")
    await billing.read("M1", NOW + timedelta(minutes=5), "501")
    await billing.read("M1", NOW + timedelta(minutes=10), "3")
    assert await billing.balance("A1") == Decimal("9.00")
    found = (await billing.api.get("/internal/anomalies", params={"meter_id": "M1"})).json()
    assert [a["kind"] for a in found["items"]] == ["register_backwards"]


async def test_refused_readings_are_one_anomaly_per_episode_with_their_count(
    billing: Harness,
) -> None:
    """A meter that reads another device sends a refused reading every poll: operators see
    (and the bus announces) one episode with a count, until a reading is accepted again."""
    announced = billing.capture("anomaly.v1", AnomalyV1)
    await billing.open("A1", "M1", credit="10")
    await billing.read("M1", NOW, "500")
    for minutes, kwh in ((5, "3"), (10, "4"), (15, "5")):
        await billing.read("M1", NOW + timedelta(minutes=minutes), kwh)
    await billing.flush()
    found = (await billing.api.get("/internal/anomalies", params={"meter_id": "M1"})).json()
    [episode] = found["items"]
    assert (episode["kind"], episode["count"], episode["ended_at"]) == (
        "register_backwards",
        3,
        None,
    )
    assert episode["last_at"] > episode["at"]
    assert episode["detail"].endswith(" to 5.000 kWh")  # the latest occurrence's
    assert [a.kind for a in announced if a.meter_id == "M1"] == ["register_backwards"]
    # A reading accepted again ends the episode; the next refusal opens another.
    await billing.read("M1", NOW + timedelta(minutes=20), "500.5")
    await billing.read("M1", NOW + timedelta(minutes=25), "7")
    await billing.flush()
    found = (await billing.api.get("/internal/anomalies", params={"meter_id": "M1"})).json()
    newest, first = found["items"]
    assert first["id"] == episode["id"]
    assert first["count"] == 3
    assert first["ended_at"] is not None
    assert (newest["count"], newest["ended_at"]) == (1, None)
    assert [a.kind for a in announced if a.meter_id == "M1"] == ["register_backwards"] * 2
    assert await billing.balance("A1") == Decimal("9.50")


async def test_daily_usage_adds_up_to_the_charges(billing: Harness) -> None:
    await billing.open("A1", "M1", credit="100", price="0.7")
    await billing.read("M1", NOW, "0")
    for minutes, kwh in ((5, "1.5"), (10, "4"), (15, "4.25")):
        await billing.read("M1", NOW + timedelta(minutes=minutes), kwh)
    usage = (await billing.api.get("/internal/usage", params={"meter_id": "M1"})).json()["items"]
    assert sum(Decimal(day["metered_kwh"]) for day in usage) == Decimal("4.25")
    assert sum(Decimal(day["cost"]) for day in usage) == Decimal(100) - await billing.balance("A1")


async def test_an_account_may_name_a_flat_tariff_billing_made(billing: Harness) -> None:
    first = await billing.api.post(
        "/internal/accounts", json={"id": "A1", "name": "A1", "price_per_kwh": "0.8"}
    )
    assert first.json()["tariff_id"] == "flat-0.8"
    second = await billing.api.post(
        "/internal/accounts", json={"id": "A2", "name": "A2", "tariff_id": "flat-0.8"}
    )
    assert second.status_code == 201, second.text
    changed = await billing.api.patch("/internal/accounts/A1", json={"tariff_id": "flat-0.8"})
    assert changed.status_code == 200, changed.text
    # New ids follow the one rule: no dots.
    refused = await billing.api.post(
        "/internal/tariffs",
        json={"id": "flat-0.9", "name": "x", "definition": {"kind": "flat", "price_per_kwh": "1"}},
    )
    assert refused.status_code == 422


async def test_a_patch_clears_only_terms_that_may_be_empty(billing: Harness) -> None:
    await billing.open("A1", "M1", credit="10", balance_cap=Decimal("50.00"))
    cleared = await billing.api.patch("/internal/accounts/A1", json={"balance_cap": None})
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["balance_cap"] is None
    for term in ("name", "mode", "trip_line", "protected", "tariff_id"):
        refused = await billing.api.patch("/internal/accounts/A1", json={term: None})
        assert refused.status_code == 422, (term, refused.text)
    # Groups given as null are left as they are.
    kept = await billing.api.patch("/internal/accounts/A1", json={"groups": None})
    assert kept.status_code == 200
