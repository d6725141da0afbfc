"""Every DTU kind and both protocol families over real sockets on 127.0.0.1.

The field is ``testkit.field``: meters answering raw Modbus RTU and DL/T 645-2007 behind a
serial device server (we dial) or a DTU in client mode (it dials our listener).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from prepaid_common.contracts import AnomalyV1, CommandResultV1, MeterStatusV1
from testkit import wait_until
from testkit.collector import Collector, holds, running_collector
from testkit.field import DialInDtu, Dlt645Meter, FakeBus, ModbusMeter, serve_raw

DLT_ADDRESS = "000000001234"


def fresh_bus() -> FakeBus:
    return FakeBus(
        modbus={1: ModbusMeter(unit=1)},
        dlt645={DLT_ADDRESS: Dlt645Meter(address=DLT_ADDRESS)},
    )


def meters(prefix: str) -> list[dict[str, Any]]:
    return [
        {"id": f"{prefix}-01", "unit_id": 1, "profile": "reference-prepaid"},
        {"id": f"{prefix}-645", "address": DLT_ADDRESS, "profile": "dlt645-2007"},
    ]


@pytest.fixture
async def listening(sqlite_url: str) -> AsyncIterator[Collector]:
    async with running_collector(sqlite_url, collector_listen_port=0) as collector:
        yield collector


def listen_port(collector: Collector) -> int:
    assert collector.service.listener is not None
    return collector.service.listener.port


async def test_rtu_over_tcp_reads_and_switches_both_protocol_families(
    backend: tuple[str, str], bus_prefix: str
) -> None:
    database_url, amqp_url = backend
    bus = fresh_bus()
    async with (
        serve_raw(bus) as (host, port),
        running_collector(database_url, amqp_url, bus_prefix) as collector,
    ):
        dtu = {
            "id": "RTU1",
            "name": "serial server",
            "kind": "rtu-over-tcp",
            "host": host,
            "port": port,
            "meters": meters("RTU1"),
        }
        response = await collector.register(dtu)
        assert response.status_code == 201, response.text
        assert response.json()["kind"] == "rtu-over-tcp"
        await wait_until(
            holds(lambda: collector.readings("RTU1-01") and collector.readings("RTU1-645"))
        )
        modbus = collector.readings("RTU1-01")[-1]
        assert (modbus.energy_kwh, modbus.relay) == (Decimal("1234.560"), "closed")
        # The profile's TOU registers travel with the reading, for billing's TOU tariffs.
        assert modbus.tou_kwh is not None
        assert set(modbus.tou_kwh) == {"sharp", "peak", "flat", "valley"}
        dlt = collector.readings("RTU1-645")[-1]
        assert (dlt.energy_kwh, dlt.relay, dlt.power_kw) == (Decimal("2345.670"), "closed", None)

        for meter_id in ("RTU1-01", "RTU1-645"):
            result = await collector.result_of(await collector.command(meter_id, "trip"))
            assert (result.succeeded, result.relay) == (True, "open"), result.error
        assert bus.modbus[1].relay_open
        assert bus.dlt645[DLT_ADDRESS].relay_open
        closed = await collector.result_of(await collector.command("RTU1-645", "close"))
        assert (closed.succeeded, closed.relay) == (True, "closed")
        view = (await collector.http.get("/internal/meters/RTU1-645")).json()
        assert (view["address"], view["unit_id"], view["relay"]) == (DLT_ADDRESS, None, "closed")


async def test_garbled_and_wrong_address_replies_never_become_readings(
    collector: Collector,
) -> None:
    bus = FakeBus(
        modbus={
            1: ModbusMeter(unit=1),
            2: ModbusMeter(unit=2, fault="garbled"),
            3: ModbusMeter(unit=3, fault="wrong_address"),
        },
        dlt645={
            "000000000011": Dlt645Meter(address="000000000011", fault="garbled"),
            "000000000012": Dlt645Meter(address="000000000012", fault="wrong_address"),
        },
    )
    faulty = ["G-02", "G-03", "G-11", "G-12"]
    async with serve_raw(bus) as (host, port):
        await collector.register(
            {
                "id": "G",
                "name": "faulty",
                "kind": "rtu-over-tcp",
                "host": host,
                "port": port,
                "meters": [
                    {"id": "G-01", "unit_id": 1, "profile": "reference-prepaid"},
                    {"id": "G-02", "unit_id": 2, "profile": "reference-prepaid"},
                    {"id": "G-03", "unit_id": 3, "profile": "reference-prepaid"},
                    {"id": "G-11", "address": "000000000011", "profile": "dlt645-2007"},
                    {"id": "G-12", "address": "000000000012", "profile": "dlt645-2007"},
                ],
            }
        )

        async def all_faulty_offline() -> bool:
            return all(collector.messages(MeterStatusV1, meter_id=m, online=False) for m in faulty)

        await wait_until(all_faulty_offline)
        await wait_until(holds(lambda: len(collector.readings("G-01")) >= 5))
    for meter_id in faulty:
        assert not collector.readings(meter_id)
        (status,) = collector.messages(MeterStatusV1, meter_id=meter_id, online=False)
        assert status.reason.startswith("garbled"), status.reason
        assert not status.reason.startswith("DTU offline")
    assert {r.energy_kwh for r in collector.readings("G-01")} == {Decimal("1234.560")}


async def test_dial_in_dtu_registers_once_and_is_read(listening: Collector) -> None:
    await listening.register(
        {
            "id": "D1",
            "name": "4G DTU",
            "kind": "dtu-client",
            "heartbeat": "HB",
            "link_timeout_seconds": 2,
            "meters": meters("D1"),
        }
    )
    dtu = DialInDtu("D1", fresh_bus(), listen_port(listening))
    await dtu.connect()
    try:
        await wait_until(
            holds(lambda: listening.readings("D1-01") and listening.readings("D1-645"))
        )
        (listed,) = (await listening.http.get("/internal/dtus")).json()["items"]
        assert (listed["kind"], listed["registration"], listed["online"]) == (
            "dtu-client",
            "LOGIN:D1",
            True,
        )
        result = await listening.result_of(await listening.command("D1-01", "trip"))
        assert result.succeeded, result.error
        assert dtu.bus.modbus[1].relay_open

        # The DTU hangs up: its meters are offline because of the DTU, not themselves.
        await dtu.drop()

        async def offline() -> list[MeterStatusV1]:
            return listening.messages(MeterStatusV1, meter_id="D1-01", online=False)

        (status,) = await wait_until(offline)
        assert status.reason.startswith("DTU offline"), status.reason
        before = len(listening.readings("D1-01"))
        await dtu.connect()
        await wait_until(holds(lambda: len(listening.readings("D1-01")) > before + 2))
        assert len(listening.messages(MeterStatusV1, meter_id="D1-01", online=True)) == 2
    finally:
        await dtu.drop()


async def test_dial_in_dtu_in_prefix_mode(listening: Collector) -> None:
    await listening.register(
        {
            "id": "P1",
            "name": "prefixing DTU",
            "kind": "dtu-client",
            "registration_mode": "prefix",
            "meters": meters("P1"),
        }
    )
    dtu = DialInDtu(
        "P1", fresh_bus(), listen_port(listening), mode="prefix", heartbeat_seconds=0.05
    )
    await dtu.connect()
    try:
        await wait_until(
            holds(
                lambda: (
                    len(listening.readings("P1-01")) >= 3 and len(listening.readings("P1-645")) >= 3
                )
            )
        )
        assert not listening.messages(MeterStatusV1, online=False)
    finally:
        await dtu.drop()


async def test_a_reconnect_replaces_a_socket_that_still_looks_open(listening: Collector) -> None:
    await listening.register(
        {"id": "R1", "name": "flapping DTU", "kind": "dtu-client", "meters": meters("R1")[:1]}
    )
    bus = fresh_bus()
    old = DialInDtu("R1", bus, listen_port(listening))
    new = DialInDtu("R1", bus, listen_port(listening))
    await old.connect()
    try:
        await wait_until(holds(lambda: listening.readings("R1-01")))
        await old.abandon()  # the old socket stays open but carries nothing any more
        await new.connect()
        await wait_until(holds(old.closed_by_peer.is_set))
        before = len(listening.readings("R1-01"))
        await wait_until(holds(lambda: len(listening.readings("R1-01")) >= before + 3))
        assert not listening.messages(MeterStatusV1, meter_id="R1-01", online=False)
    finally:
        await old.drop()
        await new.drop()


async def test_a_silent_link_is_declared_dead(listening: Collector) -> None:
    await listening.register(
        {
            "id": "S1",
            "name": "dying DTU",
            "kind": "dtu-client",
            "link_timeout_seconds": 0.6,
            "meters": meters("S1")[:1],
        }
    )
    dtu = DialInDtu("S1", fresh_bus(), listen_port(listening))
    await dtu.connect()
    try:
        await wait_until(holds(lambda: listening.readings("S1-01")))
        await dtu.abandon()

        async def offline() -> list[MeterStatusV1]:
            return listening.messages(MeterStatusV1, meter_id="S1-01", online=False)

        (status,) = await wait_until(offline)
        assert "no heartbeat or reply" in status.reason, status.reason
        await wait_until(holds(dtu.closed_by_peer.is_set))
    finally:
        await dtu.drop()


async def test_heartbeats_alone_keep_an_idle_link_alive(sqlite_url: str) -> None:
    async with running_collector(sqlite_url, collector_listen_port=0) as collector:
        await collector.register(
            {
                "id": "H1",
                "name": "idle DTU",
                "kind": "dtu-client",
                "link_timeout_seconds": 0.5,
                "meters": [],
            }
        )
        dtu = DialInDtu("H1", FakeBus(), listen_port(collector), heartbeat_seconds=0.1)
        await dtu.connect()
        try:

            async def online() -> bool:
                items = (await collector.http.get("/internal/dtus")).json()["items"]
                return bool(items[0]["online"])

            await wait_until(online)
            # Four link timeouts' worth of heartbeats and nothing else: still connected.
            await wait_until(holds(lambda: dtu.heartbeats_sent >= 20))
            assert not dtu.closed_by_peer.is_set()
            assert await online()
        finally:
            await dtu.drop()


async def test_an_unknown_registration_is_hung_up_on(listening: Collector) -> None:
    dtu = DialInDtu("NOBODY", fresh_bus(), listen_port(listening))
    await dtu.connect()
    try:
        await wait_until(holds(dtu.closed_by_peer.is_set))
    finally:
        await dtu.drop()


async def test_clocks_are_set_within_limits_and_reported_beyond(sqlite_url: str) -> None:
    bus = FakeBus(
        dlt645={
            "000000000021": Dlt645Meter("000000000021", clock_offset=timedelta(minutes=4)),
            "000000000022": Dlt645Meter("000000000022", clock_offset=timedelta(hours=2)),
        }
    )
    async with (
        serve_raw(bus) as (host, port),
        running_collector(sqlite_url, collector_clock_check_seconds=0.5) as collector,
    ):
        await collector.register(
            {
                "id": "C1",
                "name": "clocks",
                "kind": "rtu-over-tcp",
                "host": host,
                "port": port,
                "meters": [
                    {"id": "C1-21", "address": "000000000021", "profile": "dlt645-2007"},
                    {"id": "C1-22", "address": "000000000022", "profile": "dlt645-2007"},
                ],
            }
        )

        async def anomaly() -> list[AnomalyV1]:
            found = collector.messages(AnomalyV1, meter_id="C1-22")
            return [a for a in found if a.kind == "clock"]

        (found,) = await wait_until(anomaly)
        assert "beyond" in found.detail
        await wait_until(holds(lambda: bus.dlt645["000000000021"].broadcast_sets >= 1))
        assert abs(bus.dlt645["000000000021"].clock_offset) < timedelta(seconds=5)
        # Out of the broadcast's reach: its clock stays wrong and is reported once.
        assert bus.dlt645["000000000022"].clock_offset == timedelta(hours=2)
        await wait_until(holds(lambda: len(collector.readings("C1-22")) >= 5))
        assert len(await anomaly()) == 1


async def test_read_all_now_reaches_every_meter(sqlite_url: str) -> None:
    bus = FakeBus(modbus={u: ModbusMeter(unit=u) for u in (1, 2, 3)})
    async with (
        serve_raw(bus) as (host, port),
        running_collector(sqlite_url, poll_interval_seconds=30.0) as collector,
    ):
        await collector.register(
            {
                "id": "A1",
                "name": "slow cycle",
                "kind": "rtu-over-tcp",
                "host": host,
                "port": port,
                "meters": [
                    {"id": f"A1-0{u}", "unit_id": u, "profile": "reference-prepaid"}
                    for u in (1, 2, 3)
                ],
            }
        )
        # A 30 s cycle staggers the first polls over 30 s: only read-all gets them all soon.
        await wait_until(holds(lambda: collector.readings("A1-01")))
        response = await collector.http.post("/internal/read-all")
        assert response.status_code == 202
        assert response.json() == {"meters_queued_here": 3, "dtus_here": 1}
        await wait_until(
            holds(lambda: all(collector.readings(f"A1-0{u}") for u in (1, 2, 3))), timeout=5
        )


async def test_registration_checks_kinds_and_addresses(collector: Collector) -> None:
    base = {"id": "K1", "name": "x", "host": "127.0.0.1", "port": 1502}
    dlt_on_gateway = {
        **base,
        "meters": [{"id": "K1-1", "address": DLT_ADDRESS, "profile": "dlt645-2007"}],
    }
    response = await collector.register(dlt_on_gateway)
    assert response.status_code == 422
    assert "transparent link" in response.json()["detail"]
    short = {
        **base,
        "kind": "rtu-over-tcp",
        "meters": [{"id": "K1-1", "address": "1234", "profile": "dlt645-2007"}],
    }
    refused = await collector.register(short)  # neither a unit id nor 12 digits
    assert refused.status_code == 422, refused.text
    assert "address" in refused.json()["detail"]
    assert (
        await collector.register({"id": "K2", "name": "x", "kind": "rtu-over-tcp"})
    ).status_code == 422
    assert (
        await collector.register(
            {**base, "meters": [{"id": "K1-1", "address": "300", "profile": "reference-prepaid"}]}
        )
    ).status_code == 422
    assert (
        await collector.register({"id": "K3", "name": "x", "kind": "dtu-client"})
    ).status_code == 201
    clash = {"id": "K4", "name": "x", "kind": "dtu-client", "registration": "LOGIN:K3"}
    assert (await collector.register(clash)).status_code == 409
    same = {
        **base,
        "kind": "rtu-over-tcp",
        "meters": [
            {"id": "K1-1", "unit_id": 7, "profile": "reference-prepaid"},
            {"id": "K1-2", "address": "007", "profile": "reference-prepaid"},
        ],
    }
    assert "address repeated" in (await collector.register(same)).json()["detail"]


async def test_reading_a_meter_of_an_unconnected_dial_in_dtu_fails_at_once(
    listening: Collector,
) -> None:
    await listening.register(
        {"id": "U1", "name": "never dialled", "kind": "dtu-client", "meters": meters("U1")[:1]}
    )
    response = await listening.http.post("/internal/meters/U1-01/read")
    # Nothing to ask now: a conflict with the DTU's state, not a platform failure.
    assert (response.status_code, response.json()["code"]) == (409, "dtu_offline")
    assert "DTU U1 is offline" in response.json()["detail"]


async def test_a_bus_where_nobody_answers_is_reconnected_and_the_dtu_stays_online(
    collector: Collector,
) -> None:
    # The serial server is reachable but its RS485 line is cut: every meter is silent.
    bus = FakeBus(modbus={u: ModbusMeter(unit=u, fault="silent") for u in (1, 2)})
    async with serve_raw(bus) as (host, port):
        await collector.register(
            {
                "id": "L1",
                "name": "cut line",
                "kind": "rtu-over-tcp",
                "host": host,
                "port": port,
                "meters": [
                    {"id": f"L1-0{u}", "unit_id": u, "profile": "reference-prepaid"} for u in (1, 2)
                ],
            }
        )
        await wait_until(holds(lambda: bus.connections >= 2))

        async def both_offline() -> list[MeterStatusV1] | None:
            found = collector.messages(MeterStatusV1, online=False)
            return found if len(found) == 2 else None

        statuses = await wait_until(both_offline)
        assert all(s.reason.startswith("no reply") for s in statuses), statuses
        (dtu,) = (await collector.http.get("/internal/dtus")).json()["items"]
        assert dtu["online"] is True  # the link works; the line behind it does not


async def test_a_command_for_a_dtu_nobody_reaches_expires_with_an_answer(
    listening: Collector,
) -> None:
    await listening.register(
        {"id": "E1", "name": "never dialled", "kind": "dtu-client", "meters": meters("E1")[:1]}
    )
    result = await listening.result_of(await listening.command("E1-01", "trip", ttl=0.2))
    assert (result.succeeded, result.error) == (False, "expired")
    # Answered once, though every supervisor turn looks for forgotten commands: by the
    # time a later command expires too, the first has been looked at again and again.
    later = await listening.result_of(await listening.command("E1-01", "close", ttl=0.5))
    assert later.error == "expired"
    assert len(listening.messages(CommandResultV1, command_id=result.command_id)) == 1


async def test_a_registration_split_across_packets_names_the_right_dtu(
    listening: Collector,
) -> None:
    import asyncio

    for dtu_id in ("T1", "T10"):
        await listening.register({"id": dtu_id, "name": dtu_id, "kind": "dtu-client", "meters": []})
    reader, writer = await asyncio.open_connection("127.0.0.1", listen_port(listening))
    try:
        writer.write(b"LOGIN:T1")
        await writer.drain()
        await asyncio.sleep(0.05)  # the scenario: the rest comes in a second packet
        writer.write(b"0")
        await writer.drain()

        async def online() -> dict[str, bool] | None:
            items = (await listening.http.get("/internal/dtus")).json()["items"]
            states = {item["id"]: item["online"] for item in items}
            return states if any(states.values()) else None

        assert await wait_until(online) == {"T1": False, "T10": True}
    finally:
        writer.close()
        del reader


async def test_a_modbus_meter_clock_is_written_when_it_drifts(sqlite_url: str) -> None:
    from datetime import datetime

    meter = ModbusMeter(
        unit=1, clock=(datetime.now() - timedelta(minutes=7)).replace(microsecond=0)
    )
    bus = FakeBus(modbus={1: meter})
    async with (
        serve_raw(bus) as (host, port),
        running_collector(sqlite_url, collector_clock_check_seconds=0.5) as collector,
    ):
        await collector.register(
            {
                "id": "MC",
                "name": "modbus clock",
                "kind": "rtu-over-tcp",
                "host": host,
                "port": port,
                "meters": [{"id": "MC-01", "unit_id": 1, "profile": "reference-prepaid"}],
            }
        )

        def in_time() -> bool:
            assert meter.clock is not None
            return abs((meter.clock - datetime.now()).total_seconds()) < 5

        await wait_until(holds(in_time))
        assert not collector.messages(AnomalyV1, meter_id="MC-01")
