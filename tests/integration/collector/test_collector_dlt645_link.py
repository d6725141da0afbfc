"""DL/T 645 over real sockets, link level: the field simulator's meters behind a serial
device server or a dial-in DTU that misbehaves as real ones do (an echoing converter, stray
bytes, a heartbeat between two pieces of one reply, late replies), read by the collector's
own link and meter code. Every value read must be the meter's, exactly."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from decimal import Decimal

import pytest
from collector import meter_io
from collector.domain import Dlt645Profile
from collector.domain.stream import InboundStream
from collector.links import MeterGarbled, MeterRefused, RawLink
from collector.profiles import load_profiles
from collector.records import MeterConfig
from simulator import DtuFaults, MeterFaults
from simulator.clock import SimClock
from simulator.dlt645 import quirks
from simulator.dtu import SimulatedDtu
from simulator.meter import SimulatedMeter

PROFILES = load_profiles()
FULL = PROFILES["dlt645-2007"]
BASE = PROFILES["dlt645-2007-base"]
TIMEOUT = 0.4


def dlt_meter(clock: SimClock, n: int, *, profile: str = "dlt645-2007") -> SimulatedMeter:
    return SimulatedMeter(
        meter_id=f"L-{n:02d}",
        unit_id=n,
        profile=profile,
        base_load_kw=2.0,
        clock=clock,
        initial_energy_kwh=1234.56,
        address=f"{n:012d}",
    )


def config(meter: SimulatedMeter) -> MeterConfig:
    assert meter.address is not None
    return MeterConfig(id=meter.meter_id, address=meter.address, profile=meter.profile)


@asynccontextmanager
async def serial_server(
    meters: Sequence[SimulatedMeter], faults: DtuFaults | None = None
) -> AsyncIterator[tuple[SimulatedDtu, RawLink]]:
    """A serial device server we dial, and the collector's link to it."""
    dtu = SimulatedDtu("L", meters, host="127.0.0.1", port=0, kind="rtu-over-tcp", faults=faults)
    await dtu.start()
    link = RawLink(timeout=TIMEOUT, dial=("127.0.0.1", dtu.port))
    try:
        await link.connect()
        yield dtu, link
    finally:
        link.close()
        await dtu.stop()


@asynccontextmanager
async def dial_in_dtu(
    meters: Sequence[SimulatedMeter], faults: DtuFaults
) -> AsyncIterator[tuple[SimulatedDtu, RawLink]]:
    """A DTU in client mode that dials us, registers and beats; the link adopts it."""
    accepted: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accepted.put((reader, writer))

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    dtu = SimulatedDtu(
        "LD",
        meters,
        host="127.0.0.1",
        port=port,
        kind="dtu-client",
        faults=faults,
        heartbeat_seconds=30.0,
    )
    stream = InboundStream(registration=b"LOGIN:LD", heartbeat=b"HB")
    link = RawLink(timeout=TIMEOUT, stream=stream)
    await dtu.start()
    try:
        reader, writer = await asyncio.wait_for(accepted.get(), 10)
        link.adopt(reader, writer)
        yield dtu, link
    finally:
        link.close()
        await dtu.stop()
        server.close()
        await server.wait_closed()


def assert_exact(reading_kwh: Decimal, meter: SimulatedMeter) -> None:
    true_kwh = Decimal(str(meter.energy_kwh()))
    # The register holds hundredths, read a moment before the meter is looked at here.
    assert true_kwh - Decimal("0.02") <= reading_kwh <= true_kwh + Decimal("0.001")


async def test_rates_power_voltage_and_current_are_read() -> None:
    clock = SimClock()
    meter = dlt_meter(clock, 1)
    async with serial_server([meter]) as (_dtu, link):
        reading = await meter_io.read_meter(link, config(meter), FULL, ())
    sample = meter.sample()
    assert_exact(reading.energy_kwh, meter)
    assert reading.tou_kwh is not None
    for period, kwh in reading.tou_kwh.items():
        assert abs(kwh - Decimal(str(sample.energy_by_period[period]))) <= Decimal("0.01")
    assert abs(sum(reading.tou_kwh.values()) - reading.energy_kwh) <= Decimal("0.05")
    assert reading.power_kw is not None
    assert abs(reading.power_kw - Decimal(str(sample.power_kw))) <= Decimal("0.001")
    assert reading.voltage_v == Decimal(str(sample.voltage_v))
    assert reading.current_a is not None
    assert abs(reading.current_a - Decimal(str(sample.current_a))) <= Decimal("0.001")
    assert reading.relay == "closed"


async def test_rates_are_read_one_by_one_where_the_profile_says_no_blocks() -> None:
    clock = SimClock()
    meter = dlt_meter(clock, 2, profile="dlt645-2007-base")
    async with serial_server([meter]) as (_dtu, link):
        reading = await meter_io.read_meter(link, config(meter), BASE, ())
    assert reading.tou_kwh is not None
    assert set(reading.tou_kwh) == {"sharp", "peak", "flat", "valley"}
    assert_exact(reading.energy_kwh, meter)


async def test_negative_combined_energy_reads_negative_and_is_no_reading() -> None:
    clock = SimClock()
    meter = SimulatedMeter(
        meter_id="L-03",
        unit_id=3,
        profile="dlt645-2007-base",
        base_load_kw=0.0,
        clock=clock,
        address="000000000003",
    )
    quirks(meter).reverse_energy_kwh = Decimal("0.04")
    async with serial_server([meter]) as (_dtu, link):
        with pytest.raises(ValueError, match=r"-0\.04"):
            await meter_io.read_meter(link, config(meter), BASE, ())


@pytest.mark.parametrize(
    "faults",
    [
        DtuFaults(echo=True),
        DtuFaults(stray_bytes=b"\x00\x68\x11\xff"),
        DtuFaults(echo=True, stray_bytes=b"\x68\x68\x16"),
    ],
    ids=["echo", "stray-bytes", "echo-and-stray-68s"],
)
async def test_echoes_and_stray_bytes_never_spoil_a_poll(faults: DtuFaults) -> None:
    clock = SimClock()
    meters = [dlt_meter(clock, n) for n in (4, 5)]
    async with serial_server(meters, faults) as (_dtu, link):
        for _round in range(3):
            for meter in meters:
                reading = await meter_io.read_meter(link, config(meter), FULL, ())
                assert_exact(reading.energy_kwh, meter)
                assert reading.voltage_v == Decimal(str(meter.nominal_voltage_v))


async def test_a_heartbeat_between_two_pieces_of_a_reply_is_stripped() -> None:
    clock = SimClock()
    meter = dlt_meter(clock, 6)
    async with dial_in_dtu([meter], DtuFaults(heartbeat_mid_reply=True)) as (_dtu, link):
        for _round in range(3):
            reading = await meter_io.read_meter(link, config(meter), FULL, ())
            assert_exact(reading.energy_kwh, meter)
        assert link.stream.heartbeats >= 3


async def test_a_late_reply_does_not_spoil_the_next_meters_poll() -> None:
    clock = SimClock()
    slow, next_meter = dlt_meter(clock, 7), dlt_meter(clock, 8)
    async with serial_server([slow, next_meter]) as (dtu, link):
        # Later than the link's timeout, and later than its wait for a quiet line: the
        # answer lands while the next meter is being asked.
        dtu.bus.faults[slow.meter_id] = MeterFaults(slow_reply_rate=1.0, slow_reply_seconds=0.75)
        for _round in range(3):
            with pytest.raises(Exception, match="no reply"):
                await meter_io.read_meter(link, config(slow), FULL, ())
            reading = await meter_io.read_meter(link, config(next_meter), FULL, ())
            assert_exact(reading.energy_kwh, next_meter)
        assert dtu.bus.counters["slow"] >= 3


async def test_a_neighbour_answering_instead_is_garbled_not_a_reading() -> None:
    clock = SimClock()
    meters = [dlt_meter(clock, 9), dlt_meter(clock, 10)]
    async with serial_server(meters) as (dtu, link):
        dtu.bus.faults[meters[0].meter_id] = MeterFaults(wrong_address_rate=1.0)
        with pytest.raises(MeterGarbled, match="reply from 000000000010"):
            await meter_io.read_meter(link, config(meters[0]), FULL, ())


async def test_a_refused_password_is_reported_final() -> None:
    clock = SimClock()
    meter = dlt_meter(clock, 11)
    quirks(meter).password = bytes((0x02, 0x56, 0x34, 0x12))  # 123456, low byte first
    async with serial_server([meter]) as (_dtu, link):
        with pytest.raises(MeterRefused) as refused:
            await meter_io.switch_relay(link, config(meter), FULL, "trip", now=clock.now())
        assert refused.value.final
        assert "password" in str(refused.value)
        assert quirks(meter).password_failures == 1
        assert meter.relay == "closed"
        # The same meter with the profile's password as written: low byte first on the wire.
        site = Dlt645Profile.model_validate(FULL.model_dump() | {"password": "02123456"})
        relay = await meter_io.switch_relay(link, config(meter), site, "trip", now=clock.now())
        assert relay == "open"
        assert quirks(meter).password_failures == 1


async def test_close_is_1b_or_1c_as_the_profile_says() -> None:
    clock = SimClock()
    meter = dlt_meter(clock, 12, profile="dlt645-2007-base")  # base commands only
    async with serial_server([meter]) as (_dtu, link):
        now = clock.now()
        assert await meter_io.switch_relay(link, config(meter), BASE, "trip", now=now) == "open"
        with pytest.raises(MeterRefused) as refused:
            await meter_io.switch_relay(link, config(meter), FULL, "close", now=now)  # 1C
        assert not quirks(meter).close_direct
        assert meter.relay == "open"
        assert refused.value.final  # the same bytes get the same answer: not retried
        assert await meter_io.switch_relay(link, config(meter), BASE, "close", now=now) == (
            "closed"
        )


async def test_the_meter_number_identifies_the_device_at_an_address() -> None:
    clock = SimClock()
    meter = dlt_meter(clock, 13, profile="dlt645-2007-base")
    quirks(meter).meter_number = "202612070013"
    async with serial_server([meter]) as (_dtu, link):
        assert await meter_io.read_identity(link, config(meter), BASE) == "202612070013"
        # Without the meter number, the address the answer carries.
        assert await meter_io.read_identity(link, config(meter), FULL) == "000000000013"
