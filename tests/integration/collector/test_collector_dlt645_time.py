"""Meter time over real sockets: the site's meter time zone honoured, a command's deadline
taken from the meter's own clock, corrections the protocol allows (broadcast within ±5
minutes, the programmed time set beyond) read back, anomalies said once and counted, and
refusals not retried blindly. The meters are the field simulator's DL/T 645 meters behind
a serial device server; the collector runs as every entry point builds it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from collector.profiles import SHIPPED_PROFILES_DIR
from prepaid_common.contracts import AnomalyV1
from prometheus_client import REGISTRY
from pydantic import SecretStr
from simulator.clock import SimClock
from simulator.dlt645 import quirks
from simulator.dtu import SimulatedDtu
from simulator.meter import SimulatedMeter
from standalone.app import Standalone
from standalone.settings import StandaloneSettings
from testkit import wait_until
from testkit.collector import Collector, holds, running_collector
from testkit.standalone import ADMIN_PASSWORD, admin_client

# A zone no test host runs in: a collector that used the host's time would see every
# meter 14 hours off.
ZONE = "Pacific/Kiritimati"


def site_clock() -> SimClock:
    """Simulated meters keeping the site's local time (the zone above), at real speed."""
    return SimClock(start=datetime.now(ZoneInfo(ZONE)))


def dlt_meter(
    clock: SimClock, n: int, *, profile: str = "dlt645-2007", off: timedelta = timedelta()
) -> SimulatedMeter:
    meter = SimulatedMeter(
        meter_id=f"T-{n:02d}",
        unit_id=n,
        profile=profile,
        base_load_kw=1.0,
        clock=clock,
        initial_energy_kwh=500.0,
        address=f"{n:012d}",
    )
    meter.set_meter_time(meter.meter_time() + off)
    return meter


def drift(meter: SimulatedMeter, clock: SimClock) -> float:
    return (meter.meter_time() - clock.now()).total_seconds()


@asynccontextmanager
async def field(
    database_url: str, meters: Sequence[SimulatedMeter], **settings: Any
) -> AsyncIterator[tuple[Collector, SimulatedDtu]]:
    dtu = SimulatedDtu("T", meters, host="127.0.0.1", port=0, kind="rtu-over-tcp")
    await dtu.start()
    options = {"collector_meter_timezone": ZONE, "collector_clock_check_seconds": 0.5}
    try:
        async with running_collector(database_url, **(options | settings)) as collector:
            response = await collector.register(dtu.registration())
            assert response.status_code == 201, response.text
            yield collector, dtu
    finally:
        await dtu.stop()


def clock_anomalies(collector: Collector, meter_id: str) -> list[AnomalyV1]:
    found = collector.messages(AnomalyV1, meter_id=meter_id)
    return [a for a in found if a.kind == "clock"]


def clock_checks(result: str) -> float:
    value = REGISTRY.get_sample_value("prepaid_collector_clock_checks_total", {"result": result})
    return value or 0.0


async def test_meters_in_the_sites_zone_are_in_time_and_switched(sqlite_url: str) -> None:
    clock = site_clock()
    meter = dlt_meter(clock, 1)
    in_time_before = clock_checks("in_time")
    async with field(sqlite_url, [meter]) as (collector, _dtu):
        await wait_until(holds(lambda: clock_checks("in_time") >= in_time_before + 3))
        assert clock_anomalies(collector, "T-01") == []
        for action, relay in (("trip", "open"), ("close", "closed")):
            result = await collector.result_of(await collector.command("T-01", action))
            assert (result.succeeded, result.relay) == (True, relay), result.error
        assert abs(drift(meter, clock)) < 5


async def test_a_fast_meter_is_switched_and_its_clock_reported_once(sqlite_url: str) -> None:
    clock = site_clock()
    # 7 minutes fast: beyond the broadcast's ±5 minutes, and the profile has no
    # programmed time set. Its deadline must come from its own clock.
    meter = dlt_meter(clock, 2, off=timedelta(minutes=7))
    anomalies_before = clock_checks("anomaly")
    async with field(sqlite_url, [meter]) as (collector, _dtu):
        (anomaly,) = await wait_until(holds(lambda: clock_anomalies(collector, "T-02")))
        assert "+420 s" in anomaly.detail or "+419 s" in anomaly.detail, anomaly.detail
        assert "broadcast" in anomaly.detail
        for action, relay in (("trip", "open"), ("close", "closed")):
            result = await collector.result_of(await collector.command("T-02", action))
            assert (result.succeeded, result.relay) == (True, relay), result.error
        # Many checks later: one episode, one anomaly, counted once; the clock untouched.
        checks = clock_checks("anomaly")
        await wait_until(holds(lambda: len(collector.readings("T-02")) >= 15))
        assert len(clock_anomalies(collector, "T-02")) == 1
        assert clock_checks("anomaly") == checks == anomalies_before + 1
        assert 415 < drift(meter, clock) < 425
        assert quirks(meter).refusals == 0


async def test_clocks_are_corrected_by_broadcast_or_programmed_set_and_read_back(
    sqlite_url: str,
) -> None:
    clock = site_clock()
    near = dlt_meter(clock, 3, off=timedelta(minutes=-4))  # a broadcast reaches it
    far = dlt_meter(clock, 4, profile="dlt645-2007-base", off=timedelta(minutes=20))
    sets_before = clock_checks("set")
    async with field(sqlite_url, [near, far]) as (collector, _dtu):
        await wait_until(holds(lambda: abs(drift(near, clock)) < 5 and abs(drift(far, clock)) < 5))
        # The far one by the programmed time set (its password low byte first): the
        # broadcast that corrected the near one is outside its window.
        assert quirks(far).time_sets >= 1
        assert quirks(far).password_failures == 0
        assert quirks(near).time_sets == 0
        await wait_until(holds(lambda: clock_checks("set") >= sets_before + 2))
        assert clock_anomalies(collector, "T-03") == []
        assert clock_anomalies(collector, "T-04") == []


async def test_a_refused_password_is_not_sent_again(sqlite_url: str) -> None:
    clock = site_clock()
    meter = dlt_meter(clock, 5)
    quirks(meter).password = bytes((0x02, 0x56, 0x34, 0x12))  # not the profile's
    async with field(sqlite_url, [meter]) as (collector, _dtu):
        result = await collector.result_of(await collector.command("T-05", "trip"))
        assert not result.succeeded
        assert not result.retryable, result.error
        assert "password" in result.error
        await wait_until(holds(lambda: len(collector.readings("T-05")) >= 5))
        assert quirks(meter).password_failures == 1
        assert meter.relay == "closed"


async def test_a_clock_anomaly_is_on_the_operators_list(
    backend: tuple[str, str], bus_prefix: str, tmp_path: Path
) -> None:
    # The standalone product, on both backends: the meter time settings reach its collector
    # and billing takes the collector's clock anomaly onto the operators' list.
    database_url, amqp_url = backend
    clock = site_clock()
    meter = dlt_meter(clock, 6, off=timedelta(hours=2))
    dtu = SimulatedDtu("TA", [meter], host="127.0.0.1", port=0, kind="rtu-over-tcp")
    # PREPAID_PROFILES_DIR is honoured too: the meter is registered with a site's profile.
    site = tmp_path / "profiles"
    site.mkdir()
    shipped = (SHIPPED_PROFILES_DIR / "dlt645-2007.toml").read_text(encoding="utf-8")
    renamed = shipped.replace('name = "dlt645-2007"', 'name = "site-dlt645"')
    assert renamed != shipped
    (site / "site-dlt645.toml").write_text(renamed, encoding="utf-8")
    settings = StandaloneSettings(
        data_dir=tmp_path,
        profiles_dir=site,
        database_url=database_url,
        amqp_url=amqp_url,
        bus_prefix=bus_prefix,
        simulator=False,
        demo_data=False,
        poll_interval_seconds=0.2,
        collector_listen_port=None,
        collector_meter_timezone=ZONE,
        collector_clock_check_seconds=0.5,
        token_secret=SecretStr("clock-anomaly-test-secret-0123456789"),
        admin_password=SecretStr(ADMIN_PASSWORD),
    )
    product = Standalone(settings)
    await dtu.start()
    await product.start()
    try:
        async with admin_client(product) as api:
            registration = dtu.registration()  # once it listens (its port)
            for entry in registration["meters"]:
                entry["profile"] = "site-dlt645"
            registered = await api.post("/api/v1/dtus", json=registration)
            assert registered.status_code == 201, registered.text
            shown = (await api.get("/api/v1/meters")).json()["items"]
            assert [(m["id"], m["profile"]) for m in shown] == [("T-06", "site-dlt645")]

            async def listed() -> list[dict[str, Any]]:
                response = await api.get("/api/v1/anomalies", params={"kind": "clock"})
                assert response.status_code == 200, response.text
                return [a for a in response.json()["items"] if a["meter_id"] == "T-06"]

            (row,) = await wait_until(listed)
            assert "+7200 s" in row["detail"] or "+7199 s" in row["detail"], row
    finally:
        await product.stop()
        await dtu.stop()
