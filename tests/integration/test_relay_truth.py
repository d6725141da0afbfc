"""Relay truth: every relay ends up agreeing with its account's decided supply.

The product in one process (standalone wiring) on simulated meters over Modbus TCP, with a
quick reconciliation. Each case is one that left power without money (or money without
power) before control kept the reported relay beside the decided supply:

- a trip or close that failed while the DTU was offline is carried out when it returns;
- a meter swapped in for a cut meter is cut;
- a meter whose relay was left open, bound to a funded account, is closed;
- an operator's close of a cut meter lasts its grace time, visibly, then the cut returns.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from decimal import ROUND_UP, Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from prepaid_common.bus.rabbit import RabbitBus
from prepaid_common.contracts.messages import Envelope, SupplyDecidedV1, utcnow
from prepaid_common.errors import NotFound
from pydantic import SecretStr
from simulator import FieldSimulator
from standalone.app import Standalone
from standalone.settings import StandaloneSettings
from testkit import wait_until
from testkit.standalone import admin_client

FUNDED = Decimal("50.00")


@contextlib.asynccontextmanager
async def product(
    backend: tuple[str, str], bus_prefix: str, data_dir: Path, **overrides: Any
) -> AsyncIterator[tuple[Standalone, httpx.AsyncClient]]:
    """The product without demo data, its field registered, reconciling every 0.2 s."""
    database_url, amqp_url = backend
    quick: dict[str, Any] = {
        "control_sweep_seconds": 0.2,
        "control_relay_first_retry_seconds": 0.5,
        "control_relay_max_backoff_seconds": 2.0,
        "control_relay_alarm_seconds": 3.0,
        "control_operator_grace_seconds": 3.0,
    }
    settings = StandaloneSettings(
        **(quick | overrides),
        data_dir=data_dir,
        database_url=database_url,
        amqp_url=amqp_url,
        bus_prefix=bus_prefix,
        sim_dtus=2,
        sim_meters=6,
        sim_base_port=0,
        sim_speed=30,
        demo_data=False,
        poll_interval_seconds=0.3,
        collector_listen_port=0,
        token_secret=SecretStr("integration-test-secret-0123456789"),
        admin_password=SecretStr("integration-admin"),
    )
    running = Standalone(settings)
    await running.start()
    try:
        async with admin_client(running) as api:
            assert running.simulator is not None
            for dtu in running.simulator.dtus:
                response = await api.post("/api/v1/dtus", json=dtu.registration())
                assert response.status_code == 201, response.text
            yield running, api
    finally:
        await running.stop()
        if isinstance(running.bus, RabbitBus):
            await running.bus.delete_topology()


def sim(product: Standalone) -> FieldSimulator:
    assert product.simulator is not None
    return product.simulator


def relay_meters(product: Standalone, dtu: int = 0) -> list[str]:
    """Meters of one DTU whose model has a relay to switch and read back."""
    meters = sim(product).dtus[dtu].meters
    return [m.meter_id for m in meters if m.profile == "reference-prepaid"]


async def open_account(
    api: httpx.AsyncClient, meter_id: str, credit: Decimal, groups: tuple[str, ...] = ()
) -> str:
    account_id = f"ACC-{meter_id}"
    body = {
        "id": account_id,
        "name": f"Tenant of {meter_id}",
        "price_per_kwh": "1.00",
        "groups": list(groups),
    }
    assert (await api.post("/api/v1/accounts", json=body)).status_code == 201
    if credit > 0:
        top_up = {"amount": str(credit), "receipt": f"OPEN-{account_id}"}
        response = await api.post(f"/api/v1/accounts/{account_id}/top-ups", json=top_up)
        assert response.status_code == 201, response.text
        await wait_until(lambda: balance_above(api, account_id, Decimal(0)))
    return account_id


async def bind(api: httpx.AsyncClient, account_id: str, meter_id: str) -> None:
    response = await api.post(f"/api/v1/accounts/{account_id}/meters", json={"meter_id": meter_id})
    assert response.status_code == 201, response.text


async def balance_above(api: httpx.AsyncClient, account_id: str, floor: Decimal) -> bool:
    account = (await api.get(f"/api/v1/accounts/{account_id}")).json()
    return Decimal(account["balance"]) > floor


async def relay_view(product: Standalone, meter_id: str) -> dict[str, Any]:
    view: dict[str, Any] = await product.upstreams.control.get(f"/internal/relays/{meter_id}")
    return view


def relays_become(product: Standalone, wanted: dict[str, str]) -> Any:
    async def probe() -> bool:
        return all(sim(product).meter(m).relay == state for m, state in wanted.items())

    return probe


def reported(product: Standalone, meter_id: str, **wanted: str) -> Any:
    async def probe() -> bool:
        try:
            view = await relay_view(product, meter_id)
        except NotFound:  # billing's decision has not reached control yet
            return False
        return all(view[key] == value for key, value in wanted.items())

    return probe


async def test_commands_failed_while_the_dtu_was_offline_are_carried_out_when_it_returns(
    backend: tuple[str, str], bus_prefix: str, tmp_path: Path
) -> None:
    # Issue 12's outage at small scale: one paid tenant refunded to zero and one empty
    # account topped up while the meters' DTU is away, on both backends.
    async with product(backend, bus_prefix, tmp_path) as (running, api):
        paid, empty = relay_meters(running)[:2]
        paid_account = await open_account(api, paid, FUNDED)
        empty_account = await open_account(api, empty, Decimal(0))
        await bind(api, paid_account, paid)
        await bind(api, empty_account, empty)
        await wait_until(relays_become(running, {paid: "closed", empty: "open"}), timeout=30)
        await wait_until(reported(running, paid, supply="on", relay="closed"), timeout=10)
        await wait_until(reported(running, empty, supply="off", relay="open"), timeout=10)

        dtu = sim(running).dtus[0]
        await dtu.stop()
        # While the DTU is away, the paid tenant is refunded to zero and the empty one pays.
        # A reading taken just before the DTU went may still be billed: refund what the
        # balance is when the refund lands (a refund above it is refused, 422, nothing moved).
        attempts = iter(range(1, 100))

        async def refunded_to_zero() -> bool:
            account = await api.get(f"/api/v1/accounts/{paid_account}")
            balance = Decimal(account.json()["balance"])
            key = f"refund-all-{next(attempts)}"
            refund = {"amount": str(balance), "key": key, "reason": "moving out"}
            response = await api.post(f"/api/v1/accounts/{paid_account}/refunds", json=refund)
            if response.status_code == 422 and "exceeds the balance" in response.text:
                return False
            assert response.status_code == 201, response.text
            return True

        await wait_until(refunded_to_zero, timeout=10)
        top_up = {"amount": "30.00", "receipt": "DURING-OUTAGE"}
        response = await api.post(f"/api/v1/accounts/{empty_account}/top-ups", json=top_up)
        assert response.status_code == 201, response.text

        async def both_commands_failed() -> bool:
            for meter_id, action in ((paid, "trip"), (empty, "close")):
                items = (await api.get(f"/api/v1/meters/{meter_id}/commands")).json()["items"]
                billing_cmds = [c for c in items if c["action"] == action]
                if not any(c["status"] in {"failed", "expired"} for c in billing_cmds):
                    return False
            return True

        # Each command gave up (three attempts, DTU offline): before, that was the end.
        await wait_until(both_commands_failed, timeout=30)
        assert sim(running).meter(paid).relay == "closed"
        view = await relay_view(running, paid)
        assert (view["supply"], view["relay"]) == ("off", "closed")

        async def differing_seen() -> bool:
            return (await relay_view(running, paid))["differs_since"] is not None

        await wait_until(differing_seen, timeout=10)
        await dtu.start()
        await wait_until(relays_become(running, {paid: "open", empty: "closed"}), timeout=30)

        async def agreed() -> bool:
            views = [await relay_view(running, m) for m in (paid, empty)]
            return all(v["differs_since"] is None for v in views)

        await wait_until(agreed, timeout=10)
        page = await running.upstreams.control.get("/internal/relays", differing="true")
        assert [item["meter_id"] for item in page["items"]] == []


async def test_a_meter_swapped_in_for_a_cut_meter_is_cut(
    sqlite_url: str, bus_prefix: str, tmp_path: Path
) -> None:
    async with product((sqlite_url, ""), bus_prefix, tmp_path) as (running, api):
        cut, spare = relay_meters(running)[:2]
        account = await open_account(api, cut, Decimal(0))
        await bind(api, account, cut)
        await wait_until(relays_become(running, {cut: "open"}), timeout=30)
        assert sim(running).meter(spare).relay == "closed"

        final = Decimal(str(sim(running).meter(cut).energy_kwh())).quantize(
            Decimal("0.001"), ROUND_UP
        )
        start = Decimal(str(sim(running).meter(spare).energy_kwh())).quantize(Decimal("0.001"))
        swap = {"new_meter_id": spare, "old_final_kwh": str(final), "new_start_kwh": str(start)}
        response = await api.post(f"/api/v1/meters/{cut}/swap", json=swap)
        assert response.status_code == 200, response.text
        await wait_until(relays_become(running, {spare: "open"}), timeout=30)
        await wait_until(reported(running, spare, supply="off", relay="open"), timeout=10)


async def test_a_meter_left_open_and_bound_to_a_funded_account_is_closed(
    sqlite_url: str, bus_prefix: str, tmp_path: Path
) -> None:
    async with product((sqlite_url, ""), bus_prefix, tmp_path) as (running, api):
        meter_id = relay_meters(running)[0]
        # The previous tenant was cut; nobody closed the relay.
        sim(running).meter(meter_id).relay = "open"
        account = await open_account(api, meter_id, FUNDED)
        await bind(api, account, meter_id)
        await wait_until(relays_become(running, {meter_id: "closed"}), timeout=30)
        await wait_until(reported(running, meter_id, supply="on", relay="closed"), timeout=10)


async def test_an_operators_close_of_a_cut_meter_lasts_its_grace_then_the_cut_returns(
    sqlite_url: str, bus_prefix: str, tmp_path: Path
) -> None:
    # A grace long enough to be seen on a loaded machine (3 s could pass unobserved).
    async with product(
        (sqlite_url, ""), bus_prefix, tmp_path, control_operator_grace_seconds=10.0
    ) as (running, api):
        meter_id = relay_meters(running)[0]
        account = await open_account(api, meter_id, Decimal(0))
        await bind(api, account, meter_id)
        await wait_until(relays_become(running, {meter_id: "open"}), timeout=30)

        body = {"action": "close", "reason": "visit"}
        keyed = {"Idempotency-Key": "visit-1"}
        path = f"/api/v1/meters/{meter_id}/commands"
        response = await api.post(path, json=body, headers=keyed)
        assert response.status_code == 202, response.text
        # Sent again (a retry after a lost answer): the same command, not a second one.
        again = await api.post(path, json=body, headers=keyed)
        assert again.json()["id"] == response.json()["id"]
        items = (await api.get(path)).json()["items"]
        assert [c["origin"] for c in items].count("operator:admin") == 1
        await wait_until(relays_become(running, {meter_id: "closed"}), timeout=30)

        async def visible() -> dict[str, Any] | None:
            view = await relay_view(running, meter_id)
            return view if view["relay"] == "closed" and view["differs_since"] else None

        # The override shows: supply off, relay closed, since when, and until when.
        view = await wait_until(visible, timeout=10)
        assert view["supply"] == "off"
        assert view["override_until"] is not None
        # When the grace ends, billing's decision is carried out again.
        await wait_until(relays_become(running, {meter_id: "open"}), timeout=30)


async def test_a_stuck_relay_is_asked_again_until_it_agrees_and_raises_its_alarm(
    sqlite_url: str, bus_prefix: str, tmp_path: Path
) -> None:
    async with product((sqlite_url, ""), bus_prefix, tmp_path) as (running, api):
        meter_id = relay_meters(running)[0]
        account = await open_account(api, meter_id, FUNDED)
        await bind(api, account, meter_id)
        await wait_until(reported(running, meter_id, supply="on", relay="closed"), timeout=10)
        meter = sim(running).meter(meter_id)
        meter.relay_write_ignore_rate = 1.0  # every relay write acknowledged, none carried out

        balance = Decimal((await api.get(f"/api/v1/accounts/{account}")).json()["balance"])
        refund = {"amount": str(balance), "key": "refund-all", "reason": "moving out"}
        response = await api.post(f"/api/v1/accounts/{account}/refunds", json=refund)
        assert response.status_code == 201, response.text

        async def alarmed() -> dict[str, Any] | None:
            view = await relay_view(running, meter_id)
            return view if view["alarmed"] else None

        view = await wait_until(alarmed, timeout=30)
        assert (view["supply"], view["relay"]) == ("off", "closed")
        assert view["differs_since"] is not None
        assert view["reissues"] >= 1
        page = await running.upstreams.control.get("/internal/relays", differing="true")
        assert [item["meter_id"] for item in page["items"]] == [meter_id]
        commands = (await api.get(f"/api/v1/meters/{meter_id}/commands")).json()["items"]
        assert any(c["origin"] == "reconcile" for c in commands)

        async def on_the_operators_list() -> bool:
            listed = await api.get("/api/v1/anomalies", params={"kind": "relay_disagrees"})
            return any(a["meter_id"] == meter_id for a in listed.json()["items"])

        await wait_until(on_the_operators_list, timeout=10)

        # The contactor is fixed: the next re-issue opens it, and the alarm clears.
        meter.relay_write_ignore_rate = 0.0
        await wait_until(relays_become(running, {meter_id: "open"}), timeout=30)

        async def cleared() -> bool:
            view = await relay_view(running, meter_id)
            return view["differs_since"] is None and not view["alarmed"]

        await wait_until(cleared, timeout=10)


async def test_a_meter_back_online_is_reconciled_without_waiting_out_its_back_off(
    sqlite_url: str, bus_prefix: str, tmp_path: Path
) -> None:
    # The first re-issue would wait 60 s: meter.status.v1 (back online) brings it forward.
    slow = {"control_relay_first_retry_seconds": 60.0, "control_relay_max_backoff_seconds": 600}
    async with product((sqlite_url, ""), bus_prefix, tmp_path, **slow) as (running, api):
        meter_id = relay_meters(running)[0]
        account = await open_account(api, meter_id, FUNDED)
        await bind(api, account, meter_id)
        await wait_until(reported(running, meter_id, supply="on", relay="closed"), timeout=10)
        dtu = sim(running).dtus[0]
        await dtu.stop()
        balance = Decimal((await api.get(f"/api/v1/accounts/{account}")).json()["balance"])
        refund = {"amount": str(balance), "key": "refund-all", "reason": "moving out"}
        response = await api.post(f"/api/v1/accounts/{account}/refunds", json=refund)
        assert response.status_code == 201, response.text

        async def waiting_out_its_back_off() -> bool:
            view = await relay_view(running, meter_id)
            return view["differs_since"] is not None and view["next_attempt_at"] is not None

        await wait_until(waiting_out_its_back_off, timeout=30)

        async def offline() -> bool:
            return (await api.get(f"/api/v1/meters/{meter_id}")).json()["online"] is False

        await wait_until(offline, timeout=30)
        await dtu.start()
        await wait_until(relays_become(running, {meter_id: "open"}), timeout=20)


async def test_a_load_shedding_reports_its_progress_until_every_relay_is_confirmed(
    sqlite_url: str, bus_prefix: str, tmp_path: Path
) -> None:
    async with product((sqlite_url, ""), bus_prefix, tmp_path) as (running, api):
        meters = relay_meters(running, 0)[:2] + relay_meters(running, 1)[:2]
        for meter_id in meters:
            account = await open_account(api, meter_id, FUNDED, groups=("block-a",))
            await bind(api, account, meter_id)
        await wait_until(relays_become(running, dict.fromkeys(meters, "closed")), timeout=30)
        stuck = sim(running).meter(meters[0])
        stuck.relay_write_ignore_rate = 1.0

        response = await api.post("/api/v1/sheds", json={"group": "block-a", "reason": "peak"})
        assert response.status_code == 201, response.text
        batch = f"shed:{response.json()['id']}"

        async def progress() -> dict[str, Any]:
            path = f"/internal/batches/{batch}"
            try:
                found: dict[str, Any] = await running.upstreams.control.get(path)
            except NotFound:  # the relay requests are still on their way to control
                return {"meters": 0, "confirmed": 0, "failed": 0}
            return found

        async def three_confirmed_one_failed() -> dict[str, Any] | None:
            now = await progress()
            return now if (now["confirmed"], now["failed"]) == (3, 1) else None

        # Three meters cut and confirmed; the stuck one failed (and is being re-issued).
        seen = await wait_until(three_confirmed_one_failed, timeout=30)
        assert (seen["meters"], seen["queued"], seen["sent"]) == (4, 0, 0)
        stuck.relay_write_ignore_rate = 0.0

        async def all_confirmed() -> bool:
            return (await progress())["confirmed"] == 4

        await wait_until(all_confirmed, timeout=30)
        assert stuck.relay == "open"
        with pytest.raises(NotFound):
            await running.upstreams.control.get("/internal/batches/shed:nothing")


async def test_a_late_announcement_neither_undoes_a_later_decision_nor_an_operators_override(
    sqlite_url: str, bus_prefix: str, tmp_path: Path
) -> None:
    # Billing's relay requests and its bind announcements reach control on two queues: an
    # announcement may arrive after a later decision, or after an operator's command.
    async with product(
        (sqlite_url, ""), bus_prefix, tmp_path, control_operator_grace_seconds=60.0
    ) as (running, api):
        meter_id = relay_meters(running)[0]
        account = await open_account(api, meter_id, FUNDED)
        await bind(api, account, meter_id)
        await wait_until(reported(running, meter_id, supply="on", relay="closed"), timeout=30)

        path = f"/api/v1/meters/{meter_id}/commands"
        response = await api.post(path, json={"action": "trip", "reason": "inspection"})
        assert response.status_code == 202, response.text
        await wait_until(relays_become(running, {meter_id: "open"}), timeout=30)
        until = (await relay_view(running, meter_id))["override_until"]
        assert until is not None

        async def announce(supply: str, at: datetime) -> None:
            decided = SupplyDecidedV1(
                meter_id=meter_id, account_id=account, supply=supply, reason="bound", at=at
            )
            await running.bus.publish(Envelope.wrap(decided, producer="billing"))

        # The same decision again: the operator's trip stays in force for its grace.
        await announce("on", utcnow())
        view = await relay_view(running, meter_id)
        assert (view["supply"], view["override_until"]) == ("on", until)
        assert sim(running).meter(meter_id).relay == "open"

        # An older decision overtaken by a newer one is ignored: the tenant stays on supply.
        await announce("off", utcnow() - timedelta(minutes=5))
        assert (await relay_view(running, meter_id))["supply"] == "on"

        # A newer decision that changes the supply ends the override.
        await announce("off", utcnow())
        view = await relay_view(running, meter_id)
        assert (view["supply"], view["override_until"]) == ("off", None)
