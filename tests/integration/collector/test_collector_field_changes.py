"""The field as installers change it, through the public API over real sockets: no meter moved
by accident, moves and removals audited, identity checked, every state explained."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from simulator import FieldSimulator
from simulator.installers import readdress_meter, remove_meter, swap_meter
from standalone.app import Standalone
from standalone.settings import StandaloneSettings
from testkit import wait_until

POLL = 1.0
MIX = {"reference-prepaid": 1.0}


@pytest.fixture
async def api(
    backend: tuple[str, str], bus_prefix: str, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    database_url, amqp_url = backend
    product = Standalone(
        StandaloneSettings(
            data_dir=tmp_path / "data",
            database_url=database_url,
            amqp_url=amqp_url,
            bus_prefix=bus_prefix,
            simulator=False,
            demo_data=False,
            collector_listen_port=0,
            poll_interval_seconds=POLL,
            request_timeout_seconds=0.3,
            token_secret=SecretStr("field-changes-test-secret-0123456789"),
            admin_password=SecretStr("field-changes-admin"),
        )
    )
    await product.start()
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=product.app), base_url="http://test", timeout=30
    )
    token = (
        await client.post(
            "/api/v1/auth/token", data={"username": "admin", "password": "field-changes-admin"}
        )
    ).json()["access_token"]
    client.headers["Authorization"] = f"Bearer {token}"
    try:
        yield client
    finally:
        await client.aclose()
        await product.stop()


async def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def body(dtu: Any, dtu_id: str | None = None, **changes: Any) -> dict[str, Any]:
    registration = dtu.registration()
    if dtu_id is not None:
        registration["id"] = dtu_id
    return registration | changes


async def meter(api: httpx.AsyncClient, meter_id: str) -> dict[str, Any]:
    return await ok(await api.get(f"/api/v1/meters/{meter_id}"))


async def read_once(api: httpx.AsyncClient, meter_id: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        found = await meter(api, meter_id)
        return found if found["last_reading"] else None

    return await wait_until(probe)


async def audit_actions(api: httpx.AsyncClient) -> list[str]:
    page = await ok(await api.get("/api/v1/audit", params={"limit": 200}))
    return [entry["action"] for entry in page["items"]]


async def test_a_registration_never_moves_a_meter_and_a_move_is_its_own_audited_operation(
    api: httpx.AsyncClient,
) -> None:
    async with FieldSimulator(2, 2, profile_mix=MIX, seed=5) as field:
        one, two = field.dtus
        await ok(await api.post("/api/v1/dtus", json=body(one)), 201)
        await ok(await api.post("/api/v1/dtus", json=body(two)), 201)
        first = await read_once(api, "DTU0001-01")
        assert first["identity"] == str(one.meters[0].serial)

        # DTU0002 listing DTU0001-01: refused, naming the holder; nothing changed.
        stolen = body(two) | {
            "meters": [
                *body(two)["meters"],
                {"id": "DTU0001-01", "unit_id": 3, "profile": "reference-prepaid"},
            ]
        }
        clash = await api.post("/api/v1/dtus", json=stolen)
        assert clash.status_code == 409, clash.text
        assert "DTU0001-01 is on DTU DTU0001 at address 1" in clash.json()["detail"]
        assert (await meter(api, "DTU0001-01"))["dtu_id"] == "DTU0001"

        # The same physical DTU under a new id: refused, naming it.
        twin = await api.post("/api/v1/dtus", json=body(one, "COPY", meters=[]))
        assert twin.status_code == 409, twin.text
        assert "DTU DTU0001" in twin.json()["detail"]

        # An address another meter holds, by a move: refused, naming it.
        taken = await api.post(
            "/api/v1/meters/DTU0001-01/move", json={"dtu_id": "DTU0002", "unit_id": 1}
        )
        assert taken.status_code == 409, taken.text
        assert "DTU0002-01" in taken.json()["detail"]

        # The installer moves the meter to DTU0002 unit 5: read at the old place first.
        device = remove_meter(one, "DTU0001-01")
        device.unit_id = 5
        two.meters.append(device)
        readdress_meter(two, device.meter_id, unit_id=5)
        moved = await ok(
            await api.post(
                "/api/v1/meters/DTU0001-01/move",
                json={"dtu_id": "DTU0002", "unit_id": 5, "reason": "rewired"},
            )
        )
        assert (moved["from_dtu_id"], moved["from_address"]) == ("DTU0001", "1")
        assert moved["final_reading"]["source"] == "last_reading"  # gone from the old place
        assert Decimal(moved["final_reading"]["energy_kwh"]) >= Decimal(
            first["last_reading"]["energy_kwh"]
        )
        assert (moved["meter"]["dtu_id"], moved["meter"]["address"]) == ("DTU0002", "5")

        async def read_at_new_place() -> bool:
            now = await meter(api, "DTU0001-01")
            last = now["last_reading"]
            return bool(last and last["read_at"] > moved["final_reading"]["read_at"])

        await wait_until(read_at_new_place)
        after = await meter(api, "DTU0001-01")
        assert after["identity"] == str(device.serial)  # the same meter, identified again
        assert after["state"] == "ok", after
        assert "meter.move" in await audit_actions(api)


async def test_meters_and_dtus_are_disabled_and_removed_unless_bound(
    api: httpx.AsyncClient,
) -> None:
    async with FieldSimulator(1, 2, profile_mix=MIX, seed=6) as field:
        (dtu,) = field.dtus
        await ok(await api.post("/api/v1/dtus", json=body(dtu)), 201)
        await read_once(api, "DTU0001-01")

        disabled = await ok(await api.patch("/api/v1/meters/DTU0001-02", json={"enabled": False}))
        assert (disabled["enabled"], disabled["state"]) == (False, "disabled")
        refused = await api.post("/api/v1/meters/DTU0001-02/read")
        assert refused.status_code == 409, refused.text
        enabled = await ok(await api.patch("/api/v1/meters/DTU0001-02", json={"enabled": True}))
        assert enabled["enabled"] is True

        await ok(
            await api.post(
                "/api/v1/accounts", json={"id": "A1", "name": "Tenant", "price_per_kwh": "1.00"}
            ),
            201,
        )
        await ok(await api.post("/api/v1/accounts/A1/meters", json={"meter_id": "DTU0001-01"}), 201)
        bound = await api.delete("/api/v1/meters/DTU0001-01")
        assert bound.status_code == 409, bound.text
        assert "DTU0001-01 (account A1)" in bound.json()["detail"]
        whole = await api.delete("/api/v1/dtus/DTU0001")
        assert whole.status_code == 409, whole.text
        assert (await meter(api, "DTU0001-01"))["dtu_id"] == "DTU0001"

        removed = await ok(await api.delete("/api/v1/meters/DTU0001-02"))
        assert removed["meter_ids"] == ["DTU0001-02"]
        assert (await api.get("/api/v1/meters/DTU0001-02")).status_code == 404

        off = await ok(await api.patch("/api/v1/dtus/DTU0001", json={"enabled": False}))
        assert off["enabled"] is False
        assert off["link"]["state"] == "disabled"
        actions = await audit_actions(api)
        for action in ("meter.disable", "meter.enable", "meter.remove", "dtu.disable"):
            assert action in actions


async def test_a_swapped_or_readdressed_meter_is_not_billed_and_an_operator_is_told(
    api: httpx.AsyncClient,
) -> None:
    async with FieldSimulator(1, 2, profile_mix=MIX, seed=7) as field:
        (dtu,) = field.dtus
        await ok(await api.post("/api/v1/dtus", json=body(dtu)), 201)
        before = await read_once(api, "DTU0001-01")
        await read_once(api, "DTU0001-02")

        # Swapped: the meter is gone a while (no reply), then another device answers.
        dtu.bus.faults["DTU0001-01"] = _silent()

        async def silent() -> bool:
            return "no_reply" in {s["reason"] for s in (await meter(api, "DTU0001-01"))["states"]}

        await wait_until(silent)
        stranger = swap_meter(dtu, "DTU0001-01", serial=99_000_001, energy_kwh=5.0)
        del dtu.bus.faults["DTU0001-01"]

        async def mismatch_seen_thrice() -> dict[str, Any] | None:
            now = await meter(api, "DTU0001-01")
            states = [s for s in now["states"] if s["reason"] == "identity_mismatch"]
            return now if states and states[0]["count"] >= 3 else None

        swapped = await wait_until(mismatch_seen_thrice)
        assert swapped["state"] == "identity_mismatch"
        (state,) = [s for s in swapped["states"] if s["kind"] == "identity"]
        assert str(stranger.serial) in state["detail"]
        assert before["identity"] in state["detail"]
        # Its registers were never taken: the last reading is still the real meter's.
        assert (
            swapped["last_reading"]["energy_kwh"]
            == (await meter(api, "DTU0001-01"))["last_reading"]["energy_kwh"]
        )
        assert Decimal(swapped["last_reading"]["energy_kwh"]) >= Decimal(
            before["last_reading"]["energy_kwh"]
        )
        assert Decimal(swapped["last_reading"]["energy_kwh"]) != Decimal("5.00")
        refused = await api.post("/api/v1/meters/DTU0001-01/read")
        assert refused.status_code == 503, refused.text

        async def anomaly_once() -> list[dict[str, Any]] | None:
            page = await ok(
                await api.get(
                    "/api/v1/anomalies",
                    params={"meter_id": "DTU0001-01", "kind": "identity_mismatch"},
                )
            )
            return page["items"] or None

        anomalies = await wait_until(anomaly_once)
        assert len(anomalies) == 1  # once per episode, not on every poll

        # Re-addressed: meter 02 now answers at unit 1; unit 2 is silent.
        remove_meter(dtu, stranger.meter_id)
        readdress_meter(dtu, "DTU0001-02", unit_id=1)

        async def readdressed() -> dict[str, Any] | None:
            now = await meter(api, "DTU0001-01")
            states = [s for s in now["states"] if s["reason"] == "identity_mismatch"]
            return now if states and str(dtu.meters[0].serial) in states[0]["detail"] else None

        await wait_until(readdressed)


async def test_every_state_says_why_and_a_meter_is_back_within_one_interval_of_its_dtu(
    api: httpx.AsyncClient,
) -> None:
    async with FieldSimulator(1, 2, profile_mix=MIX, seed=8) as field:
        (dtu,) = field.dtus
        await ok(await api.post("/api/v1/dtus", json=body(dtu)), 201)
        first = await read_once(api, "DTU0001-01")
        last = first["last_reading"]
        # The full detail the profile reads.
        assert set(last["tou_kwh"]) == {"sharp", "peak", "flat", "valley"}
        assert Decimal(last["voltage_v"]) > 100
        assert last["current_a"] is not None
        assert last["relay"] == "closed"
        dtus = (await ok(await api.get("/api/v1/dtus")))["items"]
        assert dtus[0]["registration"] is None  # a dialled DTU shows no dial-in settings
        assert dtus[0]["heartbeat"] is None
        assert dtus[0]["link"]["state"] == "online"

        await dtu.stop()

        async def offline() -> dict[str, Any] | None:
            (now,) = (await ok(await api.get("/api/v1/dtus")))["items"]
            return now if now["link"]["state"] == "offline" else None

        down = await wait_until(offline)
        assert down["link"]["reason"]
        assert down["link"]["since"] is not None
        assert down["link"]["next_attempt_at"] is not None

        async def meter_says_dtu_offline() -> dict[str, Any] | None:
            now = await meter(api, "DTU0001-01")
            return now if now["state"] == "dtu_offline" else None

        await wait_until(meter_says_dtu_offline)
        refused = await api.post("/api/v1/meters/DTU0001-01/read")
        assert refused.status_code == 409, refused.text
        assert "offline" in refused.json()["detail"]

        # Down long enough for the old doubling back-off to reach several intervals.
        outage = await wait_until(_attempts_after(api, 5), timeout=30)
        assert outage
        stamp = (await meter(api, "DTU0001-01"))["last_reading"]["read_at"]
        await dtu.start()
        returned = time.monotonic()

        async def read_again() -> bool:
            now = await meter(api, "DTU0001-01")
            return now["last_reading"]["read_at"] > stamp

        await wait_until(read_again, interval=0.02)
        # The documented bound: read again within one poll interval of the DTU's return
        # (plus a request's time out, the answer's write and this probe's step).
        assert time.monotonic() - returned <= POLL + 0.5
        back = await meter(api, "DTU0001-01")
        assert back["state"] == "ok"


def _attempts_after(api: httpx.AsyncClient, seconds: float) -> Any:
    """A probe true once the DTU has been offline for ``seconds``."""
    started = time.monotonic()

    async def probe() -> bool:
        return time.monotonic() - started >= seconds

    return probe


def _silent() -> Any:
    from simulator.faults import MeterFaults

    return MeterFaults(silent=True)
