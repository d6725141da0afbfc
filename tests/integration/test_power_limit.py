"""Power limits (限功率) and the meter's load alarms, through the public API (issue 19).

The product in one process (standalone wiring) on simulated meters over Modbus TCP: a limit
is written to a meter whose model has the register and read back with its readings; a model
without one is refused before anything is queued; a meter whose power goes above its limit
(or that sees a malicious load) opens its own relay, and its alarm is one anomaly episode
whose count grows with each poll that sees it, ended when a close clears it.

The meters here are bound to no account: billing decides no supply for them, so control's
relay reconciliation leaves a relay the meter opened itself alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from prepaid_common.bus.rabbit import RabbitBus
from pydantic import SecretStr
from simulator import FieldSimulator, SimulatedMeter
from standalone.app import Standalone
from standalone.settings import StandaloneSettings
from testkit import wait_until
from testkit.standalone import admin_client


@contextlib.asynccontextmanager
async def product(
    backend: tuple[str, str], bus_prefix: str, data_dir: Path
) -> AsyncIterator[tuple[Standalone, httpx.AsyncClient]]:
    """The product without demo data, its field registered and polled every 0.3 s."""
    database_url, amqp_url = backend
    settings = StandaloneSettings(
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


def field(running: Standalone) -> FieldSimulator:
    assert running.simulator is not None
    return running.simulator


def meter_of(running: Standalone, profile: str) -> SimulatedMeter:
    return next(
        meter for dtu in field(running).dtus for meter in dtu.meters if meter.profile == profile
    )


async def meter_view(api: httpx.AsyncClient, meter_id: str) -> dict[str, Any]:
    response = await api.get(f"/api/v1/meters/{meter_id}")
    assert response.status_code == 200, response.text
    view: dict[str, Any] = response.json()
    return view


def view_shows(api: httpx.AsyncClient, meter_id: str, check: Any) -> Any:
    async def probe() -> bool:
        return bool(check(await meter_view(api, meter_id)))

    return probe


async def set_limit(
    api: httpx.AsyncClient, meter_id: str, kw: str, key: str | None = None
) -> httpx.Response:
    headers = {} if key is None else {"Idempotency-Key": key}
    return await api.put(f"/api/v1/meters/{meter_id}/power-limit", json={"kw": kw}, headers=headers)


async def command_succeeded(api: httpx.AsyncClient, command_id: str) -> bool:
    command = (await api.get(f"/api/v1/commands/{command_id}")).json()
    assert command["status"] in {"sent", "succeeded"}, command
    return bool(command["status"] == "succeeded")


async def load_anomalies(api: httpx.AsyncClient, meter_id: str, kind: str) -> list[Any]:
    response = await api.get("/api/v1/anomalies", params={"meter_id": meter_id})
    assert response.status_code == 200, response.text
    return [a for a in response.json()["items"] if a["kind"] == kind]


def load_state(view: dict[str, Any]) -> dict[str, Any] | None:
    return next((s for s in view["states"] if s["kind"] == "load"), None)


async def test_a_limit_is_written_read_back_and_refused_where_the_model_has_none(
    backend: tuple[str, str], bus_prefix: str, tmp_path: Path
) -> None:
    async with product(backend, bus_prefix, tmp_path) as (running, api):
        meter = meter_of(running, "reference-prepaid")
        await wait_until(view_shows(api, meter.meter_id, lambda v: v["last_reading"]), timeout=20)
        before = await meter_view(api, meter.meter_id)
        assert before["power_limit"] == {
            "asked_kw": None,
            "asked_at": None,
            "command_id": None,
            "status": None,
            "reported_kw": None,
        }
        assert "power_limit" in before["commands"]

        response = await set_limit(api, meter.meter_id, "3.50", key="limit-1")
        assert response.status_code == 202, response.text
        command = response.json()
        assert (command["action"], command["power_limit_kw"]) == ("power_limit", "3.50")
        # The same key again answers the first command: nothing is sent twice.
        again = await set_limit(api, meter.meter_id, "3.50", key="limit-1")
        assert again.status_code == 202, again.text
        assert again.headers.get("Idempotent-Replayed") == "true"
        assert again.json()["id"] == command["id"]
        # Another limit under the same key is a conflict, not a second command.
        reused = await set_limit(api, meter.meter_id, "4.00", key="limit-1")
        assert reused.status_code == 409, reused.text
        # A method the path does not take is the router's 405, whatever key it carries.
        undeclared = await api.post(
            f"/api/v1/meters/{meter.meter_id}/power-limit",
            json={"kw": "4.00"},
            headers={"Idempotency-Key": "limit-1"},
        )
        assert undeclared.status_code == 405, undeclared.text

        await wait_until(lambda: command_succeeded(api, command["id"]), timeout=20)
        assert meter.power_limit_kw == Decimal("3.50")
        await wait_until(
            view_shows(
                api,
                meter.meter_id,
                lambda v: (
                    v["power_limit"]["reported_kw"] == "3.50"
                    and v["last_reading"]["power_limit_kw"] == "3.50"
                ),
            ),
            timeout=20,
        )
        shown = (await meter_view(api, meter.meter_id))["power_limit"]
        assert (shown["asked_kw"], shown["status"], shown["command_id"]) == (
            "3.50",
            "succeeded",
            command["id"],
        )
        commands = (await api.get(f"/api/v1/meters/{meter.meter_id}/commands")).json()["items"]
        assert [c["id"] for c in commands if c["action"] == "power_limit"] == [command["id"]]
        audit = (await api.get("/api/v1/audit")).json()["items"]
        assert any(
            (entry["action"], entry["target"], entry["detail"].get("kw"))
            == ("meter.power_limit", meter.meter_id, "3.50")
            for entry in audit
        ), audit

        # Bad values: refused, nothing queued, the meter keeps its limit.
        for bad in ("0", "-1.00", "3.505", "abc", "1000.00", "NaN"):
            refused = await set_limit(api, meter.meter_id, bad)
            assert refused.status_code == 422, (bad, refused.text)
        missing = await api.put(f"/api/v1/meters/{meter.meter_id}/power-limit", json={})
        assert missing.status_code == 422, missing.text
        after = (await api.get(f"/api/v1/meters/{meter.meter_id}/commands")).json()["items"]
        assert len(after) == len(commands)

        # A model without a power limit register: 409 naming the profile, nothing queued.
        plain = meter_of(running, "eastron-sdm120")
        conflict = await set_limit(api, plain.meter_id, "3.50")
        assert conflict.status_code == 409, conflict.text
        assert "eastron-sdm120" in conflict.text
        assert "power_limit" in conflict.text
        queued = (await api.get(f"/api/v1/meters/{plain.meter_id}/commands")).json()["items"]
        assert queued == []
        assert (await meter_view(api, plain.meter_id))["power_limit"] is None
        unknown = await set_limit(api, "NO-SUCH-METER", "3.50")
        assert unknown.status_code == 404, unknown.text


@pytest.mark.parametrize("alarm", ["overload", "malicious_load"])
async def test_a_meter_over_its_limit_trips_itself_and_is_one_anomaly_episode(
    backend: tuple[str, str], bus_prefix: str, tmp_path: Path, alarm: str
) -> None:
    async with product(backend, bus_prefix, tmp_path) as (running, api):
        meter = meter_of(running, "reference-prepaid")
        meter.base_load_kw = 0.5
        response = await set_limit(api, meter.meter_id, "2.00")
        assert response.status_code == 202, response.text
        await wait_until(lambda: command_succeeded(api, response.json()["id"]), timeout=20)
        assert meter.relay == "closed"

        if alarm == "overload":
            # Well above the limit in every hour of the simulated day (its shape: x0.26-1.73).
            meter.base_load_kw = 10.0
        else:
            # A heater switched on: the meter recognises the resistive load's signature.
            meter.resistive_load_kw = 1.0
        await wait_until(lambda: _relay_open(meter), timeout=20)
        assert (meter.overload, meter.malicious_load) == (
            alarm == "overload",
            alarm == "malicious_load",
        )

        # Seen by several polls: one state whose count grows, one anomaly for the episode.
        await wait_until(
            view_shows(api, meter.meter_id, lambda v: (load_state(v) or {}).get("count", 0) >= 3),
            timeout=20,
        )
        view = await meter_view(api, meter.meter_id)
        state = load_state(view)
        assert state is not None
        assert state["reason"] == alarm
        assert view["relay"] == "open"

        async def announced() -> bool:
            return bool(await load_anomalies(api, meter.meter_id, alarm))

        await wait_until(announced, timeout=20)
        assert len(await load_anomalies(api, meter.meter_id, alarm)) == 1

        # The load goes; an operator closes the relay: the alarm ends with the episode.
        meter.base_load_kw = 0.5
        meter.resistive_load_kw = 0.0
        close = await api.post(
            f"/api/v1/meters/{meter.meter_id}/commands",
            json={"action": "close", "reason": "load removed"},
        )
        assert close.status_code == 202, close.text
        await wait_until(lambda: command_succeeded(api, close.json()["id"]), timeout=20)
        await wait_until(
            view_shows(api, meter.meter_id, lambda v: load_state(v) is None), timeout=20
        )
        assert meter.relay == "closed"
        assert len(await load_anomalies(api, meter.meter_id, alarm)) == 1


async def _relay_open(meter: SimulatedMeter) -> bool:
    return meter.relay == "open"
