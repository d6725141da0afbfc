"""The collector against the field simulator over real sockets, on both backends.

Readings, status changes and command results are observed on the bus, as billing and
control would see them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from prepaid_common.contracts import CommandResultV1, MeterStatusV1, ReadingV1
from simulator import FieldSimulator, SimulatedMeter
from testkit import wait_until
from testkit.collector import Collector, holds, running_collector

ALL_PROFILES = {"reference-prepaid": 1.0, "acrel-ddsy1352": 1.0, "eastron-sdm120": 1.0}


@pytest.fixture
async def field_sim() -> AsyncIterator[FieldSimulator]:
    async with FieldSimulator(1, 3, profile_mix=ALL_PROFILES, speed=60.0) as simulator:
        yield simulator


def true_energy(meter: SimulatedMeter) -> Decimal:
    """The meter's energy now, plus a float32 register's rounding (a reading may exceed it)."""
    return Decimal(str(meter.energy_kwh())) + Decimal("0.001")


def meter_with(simulator: FieldSimulator, profile: str) -> str:
    return next(m.meter_id for m in simulator.dtus[0].meters if m.profile == profile)


async def test_registered_dtu_sends_readings_for_every_meter(
    backend: tuple[str, str], bus_prefix: str, field_sim: FieldSimulator
) -> None:
    database_url, amqp_url = backend
    async with running_collector(database_url, amqp_url, bus_prefix) as collector:
        registration = field_sim.dtus[0].registration()
        assert (await collector.register(registration)).status_code == 201
        assert (await collector.register(registration)).status_code == 200
        meter_ids = [m.meter_id for m in field_sim.dtus[0].meters]

        def grown(meter_id: str) -> bool:
            readings = collector.readings(meter_id)
            return len(readings) >= 2 and readings[-1].energy_kwh > readings[0].energy_kwh

        # At speed 60 every meter's energy register moves within a second or two.
        await wait_until(holds(lambda: all(grown(m) for m in meter_ids)))
        for meter_id in meter_ids:
            readings = collector.readings(meter_id)
            simulated = field_sim.meter(meter_id)
            assert readings[-1].dtu_id == "DTU0001"
            assert readings[-1].energy_kwh <= true_energy(simulated)
            assert readings[-1].power_kw is not None
            assert readings[-1].relay == (
                "closed" if simulated.profile == "reference-prepaid" else None
            )
            assert collector.messages(MeterStatusV1, meter_id=meter_id, online=True)

        page = (await collector.http.get("/internal/meters")).json()
        assert page["total"] == 3
        assert [item["id"] for item in page["items"]] == sorted(meter_ids)
        view = page["items"][0]
        assert view["online"] is True
        assert view["dtu_online"] is True
        assert Decimal(view["last_reading"]["energy_kwh"]) > 0
        dtus = (await collector.http.get("/internal/dtus")).json()["items"]
        assert dtus[0]["online"] is True
        assert dtus[0]["meter_ids"] == meter_ids


async def test_a_trip_opens_the_relay_and_energy_stops(
    collector: Collector, field_sim: FieldSimulator
) -> None:
    await collector.register(field_sim.dtus[0].registration())
    meter_id = meter_with(field_sim, "reference-prepaid")
    await wait_until(holds(lambda: collector.readings(meter_id)))

    result = await collector.result_of(await collector.command(meter_id, "trip"))
    assert result.succeeded, result.error
    assert result.relay == "open"
    assert field_sim.meter(meter_id).relay == "open"
    tripped_at = len(collector.readings(meter_id))

    async def three_readings_after_trip() -> list[ReadingV1]:
        after = collector.readings(meter_id)[tripped_at:]
        return after if len(after) >= 3 else []

    after = await wait_until(three_readings_after_trip)
    assert {r.relay for r in after} == {"open"}
    assert len({r.energy_kwh for r in after}) == 1
    assert {r.power_kw for r in after} == {Decimal("0.000")}
    view = (await collector.http.get(f"/internal/meters/{meter_id}")).json()
    assert view["relay"] == "open"

    closed = await collector.result_of(await collector.command(meter_id, "close"))
    assert (closed.succeeded, closed.relay) == (True, "closed")
    assert field_sim.meter(meter_id).relay == "closed"


async def test_commands_that_cannot_run_fail_with_a_reason(
    collector: Collector, field_sim: FieldSimulator
) -> None:
    await collector.register(field_sim.dtus[0].registration())
    no_relay = meter_with(field_sim, "acrel-ddsy1352")
    result = await collector.result_of(await collector.command(no_relay, "trip"))
    assert not result.succeeded
    assert "no relay control" in result.error
    assert result.retryable is False

    reference = meter_with(field_sim, "reference-prepaid")
    expired = await collector.result_of(await collector.command(reference, "trip", ttl=-1))
    assert (expired.succeeded, expired.error, expired.retryable) == (False, "expired", False)
    assert field_sim.meter(reference).relay == "closed"

    # A meter of another collector: nothing is said about it.
    foreign = await collector.command("ELSEWHERE-01", "trip")
    await wait_until(holds(lambda: len(collector.readings(reference)) >= 3))
    assert not collector.messages(CommandResultV1, command_id=foreign)


async def test_a_silent_unit_goes_offline_while_its_bus_keeps_reading(
    collector: Collector, field_sim: FieldSimulator
) -> None:
    registration = field_sim.dtus[0].registration()
    registration["meters"].append(
        {"id": "DTU0001-09", "unit_id": 9, "profile": "reference-prepaid"}
    )
    await collector.register(registration)

    async def offline_status() -> list[MeterStatusV1]:
        return collector.messages(MeterStatusV1, meter_id="DTU0001-09", online=False)

    (status,) = await wait_until(offline_status)
    assert "no reply" in status.reason
    others = [m.meter_id for m in field_sim.dtus[0].meters]
    counts = {m: len(collector.readings(m)) for m in others}

    async def others_keep_reading() -> bool:
        return all(len(collector.readings(m)) >= counts[m] + 3 for m in others)

    await wait_until(others_keep_reading)
    assert not collector.readings("DTU0001-09")
    assert len(collector.messages(MeterStatusV1, meter_id="DTU0001-09")) == 1
    silent = await collector.http.post("/internal/meters/DTU0001-09/read")
    assert silent.status_code == 503
    assert silent.json()["code"] == "meter_unreachable"
    view = (await collector.http.get("/internal/meters/DTU0001-09")).json()
    assert (view["online"], view["dtu_online"], view["last_reading"]) == (False, True, None)


async def test_a_stopped_dtu_goes_offline_and_comes_back(
    collector: Collector, field_sim: FieldSimulator
) -> None:
    dtu = field_sim.dtus[0]
    await collector.register(dtu.registration())
    meter_ids = [m.meter_id for m in dtu.meters]
    await wait_until(holds(lambda: all(collector.readings(m) for m in meter_ids)))

    await dtu.stop()

    async def all_offline() -> bool:
        return all(collector.messages(MeterStatusV1, meter_id=m, online=False) for m in meter_ids)

    await wait_until(all_offline)
    status = collector.messages(MeterStatusV1, meter_id=meter_ids[0], online=False)[0]
    assert status.reason.startswith("DTU offline")
    (listed,) = (await collector.http.get("/internal/dtus")).json()["items"]
    assert listed["online"] is False
    view = (await collector.http.get(f"/internal/meters/{meter_ids[0]}")).json()
    assert (view["online"], view["dtu_online"]) == (False, False)
    refused = await collector.http.post(f"/internal/meters/{meter_ids[0]}/read")
    assert (refused.status_code, refused.json()["code"]) == (409, "dtu_offline")

    await dtu.start()

    async def all_back() -> bool:
        return all(
            len(collector.messages(MeterStatusV1, meter_id=m, online=True)) == 2 for m in meter_ids
        )

    await wait_until(all_back)


async def test_read_now_and_the_meter_listing(
    collector: Collector, field_sim: FieldSimulator
) -> None:
    await collector.register(field_sim.dtus[0].registration())
    meter_id = meter_with(field_sim, "eastron-sdm120")

    async def dtu_online() -> bool:
        # Read-now on a DTU not (yet) connected answers 409 dtu_offline: wait for the link.
        listing = (await collector.http.get(f"/internal/meters/{meter_id}")).json()
        return bool(listing.get("dtu_online"))

    await wait_until(dtu_online)
    response = await collector.http.post(f"/internal/meters/{meter_id}/read")
    assert response.status_code == 200, response.text
    view = response.json()
    assert view["online"] is True
    assert view["profile"] == "eastron-sdm120"
    assert Decimal(view["last_reading"]["energy_kwh"]) <= true_energy(field_sim.meter(meter_id))

    ids = ",".join(m.meter_id for m in field_sim.dtus[0].meters[:2])
    page = (await collector.http.get("/internal/meters", params={"ids": ids, "limit": 1})).json()
    assert (page["total"], page["limit"], len(page["items"])) == (2, 1, 1)
    second = (
        await collector.http.get("/internal/meters", params={"ids": ids, "limit": 1, "offset": 1})
    ).json()
    assert second["items"][0]["id"] != page["items"][0]["id"]
    missing = await collector.http.get("/internal/meters/NOPE-01")
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    assert (await collector.http.post("/internal/meters/NOPE-01/read")).status_code == 404


async def test_registration_is_validated(collector: Collector) -> None:
    dtu = {"id": "DTU0100", "name": "x", "host": "127.0.0.1", "port": 1502, "meters": []}
    bad_profile = {**dtu, "meters": [{"id": "M-1", "unit_id": 1, "profile": "no-such-model"}]}
    response = await collector.register(bad_profile)
    assert response.status_code == 422
    assert response.json()["code"] == "invalid"
    assert "unknown profile 'no-such-model'" in response.json()["detail"]
    twice = {
        **dtu,
        "meters": [
            {"id": "M-1", "unit_id": 1, "profile": "reference-prepaid"},
            {"id": "M-2", "unit_id": 1, "profile": "reference-prepaid"},
        ],
    }
    assert (await collector.register(twice)).status_code == 422
    assert (await collector.register({**dtu, "id": "has.dot"})).status_code == 422
    first = {**dtu, "meters": [{"id": "M-1", "unit_id": 1, "profile": "reference-prepaid"}]}
    assert (await collector.register(first)).status_code == 201
    clash = {**dtu, "meters": [{"id": "M-3", "unit_id": 1, "profile": "reference-prepaid"}]}
    conflict = await collector.register(clash)
    assert (conflict.status_code, conflict.json()["code"]) == (409, "conflict")


async def test_a_command_accepted_before_start_is_executed_after(
    sqlite_url: str, field_sim: FieldSimulator
) -> None:
    """An accepted command is in the database: a collector that starts later still runs it."""
    meter_id = meter_with(field_sim, "reference-prepaid")
    command_ids: list[str] = []

    async def accept_while_not_polling(collector: Collector) -> None:
        await collector.register(field_sim.dtus[0].registration())
        command_ids.append(await collector.command(meter_id, "trip"))
        assert not collector.messages(CommandResultV1)

    async with running_collector(sqlite_url, before_start=accept_while_not_polling) as collector:
        result = await collector.result_of(command_ids[0])
        assert (result.succeeded, result.relay) == (True, "open")
        assert field_sim.meter(meter_id).relay == "open"


async def test_a_bus_loop_whose_settings_could_not_be_read_tries_again(
    sqlite_url: str, field_sim: FieldSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Thousands of loops starting at once can find the database busy: a loop whose first
    read of its settings fails must not stay without them (and never poll)."""
    from collector import records

    real_load_bus = records.load_bus
    failures: list[str] = []

    async def busy_once(store: object, dtu_id: str) -> object:
        if not failures:
            failures.append(dtu_id)
            raise TimeoutError("QueuePool limit reached")
        return await real_load_bus(store, dtu_id)  # type: ignore[arg-type]

    monkeypatch.setattr(records, "load_bus", busy_once)
    async with running_collector(sqlite_url, poll_interval_seconds=0.3) as collector:
        assert (await collector.register(field_sim.dtus[0].registration())).status_code == 201
        meter_ids = [m.meter_id for m in field_sim.dtus[0].meters]
        await wait_until(holds(lambda: all(collector.readings(m) for m in meter_ids)))
    assert failures == ["DTU0001"]
