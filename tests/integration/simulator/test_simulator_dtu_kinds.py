"""Every DTU kind of the simulator over real loopback sockets, with timing and faults."""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from collections.abc import AsyncIterator
from datetime import datetime

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusIOException
from pymodbus.framer import FramerType
from simulator import DtuFaults, FieldSimulator, MeterFaults, SerialLine, SimClock
from simulator import dlt645 as d
from simulator.rtu import crc_ok, rtu_frame
from testkit import wait_until

START = datetime(2025, 7, 1, 12, 0)


def frozen_clock() -> SimClock:
    return SimClock(start=START, monotonic=lambda: 0.0)


def read_request(unit_id: int, address: int = 0, count: int = 2) -> bytes:
    return rtu_frame(unit_id, struct.pack(">BHH", 3, address, count))


async def read_exactly(reader: asyncio.StreamReader, size: int) -> bytes:
    async with asyncio.timeout(2):
        return await reader.readexactly(size)


# --- serial device server (RTU over TCP) -------------------------------------------------
async def test_pymodbus_rtu_framer_reads_a_serial_device_server() -> None:
    mix = {"reference-prepaid": 1.0}
    field = FieldSimulator(
        1, 2, kind_mix={"rtu-over-tcp": 1}, profile_mix=mix, clock=frozen_clock()
    )
    async with field:
        dtu = field.dtus[0]
        assert dtu.kind == "rtu-over-tcp"
        client = AsyncModbusTcpClient(
            dtu.host, port=dtu.port, framer=FramerType.RTU, timeout=1, retries=0
        )
        assert await client.connect()
        try:
            response = await client.read_holding_registers(0, count=0x16, device_id=2)
        finally:
            client.close()
        assert not response.isError()
        energy = response.registers[0] << 16 | response.registers[1]
        assert energy == int(field.meter("DTU0001-02").energy_kwh() * 100 + 1e-9)


async def test_dlt645_meter_behind_a_serial_device_server() -> None:
    field = FieldSimulator(
        1,
        2,
        kind_mix={"rtu-over-tcp": 1},
        profile_mix={"dlt645-2007": 1.0},
        clock=frozen_clock(),
    )
    async with field:
        dtu = field.dtus[0]
        meter = dtu.meters[1]
        assert meter.address == "000001000002"
        assert dtu.registration()["meters"][1]["address"] == meter.address
        reader, writer = await asyncio.open_connection(dtu.host, dtu.port)
        try:
            identifier = d.ENERGY_FORWARD.to_bytes(4, "little")
            writer.write(d.encode_frame(meter.address, d.READ, identifier))
            reply = await read_exactly(reader, 4 + 12 + 8)
        finally:
            writer.close()
        used, frame = d.decode_frame(reply)
        assert used == len(reply)
        assert frame is not None
        assert frame.control == 0x91
        assert frame.address == meter.address
        assert d.from_bcd(frame.data[4:8]) == int(meter.energy_kwh() * 100 + 1e-9)


# --- DTU in client mode ------------------------------------------------------------------
class FakeCollector:
    """A listening socket standing in for the collector: keeps each accepted stream."""

    def __init__(self) -> None:
        self.accepted: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.Queue()
        )
        self.server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> FakeCollector:
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self.accepted.put((reader, writer))

        self.server = await asyncio.start_server(accept, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self.server is not None
        self.server.close()
        while not self.accepted.empty():
            _reader, writer = self.accepted.get_nowait()
            writer.close()

    async def next_dtu(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        async with asyncio.timeout(5):
            return await self.accepted.get()


@pytest.fixture
async def collector() -> AsyncIterator[FakeCollector]:
    async with FakeCollector() as fake:
        yield fake


async def test_client_mode_dtu_registers_answers_and_sends_heartbeats(
    collector: FakeCollector,
) -> None:
    field = FieldSimulator(
        1,
        2,
        kind_mix={"dtu-client": 1},
        profile_mix={"reference-prepaid": 1.0},
        target=("127.0.0.1", collector.port),
        heartbeat_seconds=0.2,
        clock=frozen_clock(),
    )
    async with field:
        dtu = field.dtus[0]
        assert dtu.target == ("127.0.0.1", collector.port)
        assert dtu.registration()["kind"] == "dtu-client"
        reader, writer = await collector.next_dtu()
        assert await read_exactly(reader, 13) == b"LOGIN:DTU0001"
        writer.write(read_request(1))
        reply = await read_exactly(reader, 9)
        assert crc_ok(reply)
        assert reply[:3] == bytes([1, 3, 4])
        # Idle now: the heartbeat comes within its interval.
        assert await read_exactly(reader, 2) == b"HB"
        writer.close()


async def test_client_mode_prefix_precedes_every_reply(collector: FakeCollector) -> None:
    field = FieldSimulator(
        1,
        1,
        kind_mix={"dtu-client": 1},
        profile_mix={"reference-prepaid": 1.0},
        target=("127.0.0.1", collector.port),
        registration_mode="prefix",
        clock=frozen_clock(),
    )
    async with field:
        reader, writer = await collector.next_dtu()
        login = b"LOGIN:DTU0001"
        for _ in range(2):
            writer.write(read_request(1))
            assert await read_exactly(reader, len(login) + 9) == login + (
                await _expected_reply(field)
            )
        writer.close()


async def _expected_reply(field: FieldSimulator) -> bytes:
    _used, reply, _wire = field.dtus[0].bus.take_raw(bytearray(read_request(1)))
    assert reply is not None
    return reply


async def test_client_mode_dtu_dials_again_after_a_drop(collector: FakeCollector) -> None:
    field = FieldSimulator(
        1,
        1,
        kind_mix={"dtu-client": 1},
        target=("127.0.0.1", collector.port),
        reconnect_seconds=0.05,
        clock=frozen_clock(),
    )
    async with field:
        _reader, writer = await collector.next_dtu()
        writer.close()
        reader, writer = await collector.next_dtu()
        assert await read_exactly(reader, 13) == b"LOGIN:DTU0001"
        assert field.dtus[0].connects == 2
        writer.close()


# --- timing and faults -------------------------------------------------------------------
async def test_a_9600_baud_bus_is_as_slow_as_the_model_and_serves_one_request_at_a_time() -> None:
    line = SerialLine(baud=9600, turnaround_seconds=0.030)
    field = FieldSimulator(
        1, 2, profile_mix={"reference-prepaid": 1.0}, line=line, clock=frozen_clock()
    )
    async with field:
        dtu = field.dtus[0]
        clients = [
            AsyncModbusTcpClient(dtu.host, port=dtu.port, timeout=2, retries=0) for _ in "ab"
        ]
        for client in clients:
            assert await client.connect()
        try:
            began = time.monotonic()
            # Two connections, one bus: the second read waits for the first.
            responses = await asyncio.gather(
                *(c.read_holding_registers(0, count=0x16, device_id=1) for c in clients)
            )
            elapsed = time.monotonic() - began
        finally:
            for client in clients:
                client.close()
    one = line.exchange_seconds(8, 5 + 2 * 0x16)
    assert all(not r.isError() for r in responses)
    assert 2 * one <= elapsed < 2 * one + 0.5


async def test_silent_meter_and_gateway_report_of_a_bad_bus_crc() -> None:
    field = FieldSimulator(1, 2, profile_mix={"reference-prepaid": 1.0}, clock=frozen_clock())
    dtu = field.dtus[0]
    dtu.bus.faults["DTU0001-01"] = MeterFaults(silent=True)
    dtu.bus.faults["DTU0001-02"] = MeterFaults(crc_error_rate=1.0)
    async with field:
        client = AsyncModbusTcpClient(dtu.host, port=dtu.port, timeout=0.3, retries=0)
        assert await client.connect()
        try:
            with pytest.raises(ModbusIOException):
                await client.read_holding_registers(0, count=2, device_id=1)
            response = await client.read_holding_registers(0, count=2, device_id=2)
        finally:
            client.close()
    assert response.isError()
    assert response.exception_code == 0x0B


async def test_flapping_dtu_drops_its_connections_and_comes_back() -> None:
    field = FieldSimulator(1, 1, clock=frozen_clock())
    dtu = field.dtus[0]
    dtu.faults = DtuFaults(flap_every_seconds=0.4, flap_down_seconds=0.2)
    async with field:
        reader, writer = await asyncio.open_connection(dtu.host, dtu.port)
        # The drop closes our connection from the DTU's side.
        async with asyncio.timeout(3):
            assert await reader.read() == b""
        writer.close()

        async def reachable() -> bool:
            with contextlib.suppress(OSError):
                _r, w = await asyncio.open_connection(dtu.host, dtu.port)
                w.close()
                return True
            return False

        assert await wait_until(reachable, timeout=3)
