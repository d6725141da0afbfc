"""A real pymodbus client against the field simulator on loopback sockets."""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator
from datetime import datetime

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusIOException
from simulator import FieldSimulator, SimClock

MIX = {"reference-prepaid": 1.0, "acrel-ddsy1352": 1.0, "eastron-sdm120": 1.0}


class FrozenTime:
    """Simulated time that stands still, so a register read can be compared exactly."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def frozen() -> FrozenTime:
    return FrozenTime()


@pytest.fixture
async def field(frozen: FrozenTime) -> AsyncIterator[FieldSimulator]:
    clock = SimClock(start=datetime(2025, 7, 1, 12, 0), monotonic=frozen)
    async with FieldSimulator(1, 3, profile_mix=MIX, seed=3, clock=clock) as simulator:
        yield simulator


@pytest.fixture
async def client(field: FieldSimulator) -> AsyncIterator[AsyncModbusTcpClient]:
    dtu = field.dtus[0]
    modbus = AsyncModbusTcpClient(dtu.host, port=dtu.port, timeout=0.3, retries=0)
    assert await modbus.connect()
    yield modbus
    modbus.close()


def meter_of(field: FieldSimulator, profile: str) -> tuple[int, float]:
    meter = next(m for m in field.dtus[0].meters if m.profile == profile)
    return meter.unit_id, meter.energy_kwh()


async def test_block_read_shows_what_the_simulator_holds(
    field: FieldSimulator, client: AsyncModbusTcpClient, frozen: FrozenTime
) -> None:
    unit, _ = meter_of(field, "reference-prepaid")
    meter = field.dtus[0].meters[unit - 1]
    frozen.now += 3600
    response = await client.read_holding_registers(0x0000, count=0x16, device_id=unit)
    assert not response.isError()
    regs = response.registers
    assert (regs[0] << 16 | regs[1]) == int(meter.energy_kwh() * 100)
    assert (regs[0x0C] << 16 | regs[0x0D]) == round(meter.power_kw() * 1000)
    assert regs[0x10] == 0


async def test_trip_over_the_wire_opens_the_relay(
    field: FieldSimulator, client: AsyncModbusTcpClient
) -> None:
    unit, _ = meter_of(field, "reference-prepaid")
    response = await client.write_register(0x0011, 0x001A, device_id=unit)
    assert not response.isError()
    assert field.dtus[0].meters[unit - 1].relay == "open"
    state = await client.read_holding_registers(0x0010, count=1, device_id=unit)
    assert state.registers == [1]
    refused = await client.write_register(0x0011, 0x0042, device_id=unit)
    assert refused.isError()
    assert refused.exception_code == 0x03


async def test_clock_set_with_fc16(field: FieldSimulator, client: AsyncModbusTcpClient) -> None:
    unit, _ = meter_of(field, "reference-prepaid")
    written = await client.write_registers(0x0020, [2026, 2, 3, 4, 5, 6], device_id=unit)
    assert not written.isError()
    clock = await client.read_holding_registers(0x0020, count=6, device_id=unit)
    assert clock.registers == [2026, 2, 3, 4, 5, 6]


async def test_sdm120_floats_over_fc04(field: FieldSimulator, client: AsyncModbusTcpClient) -> None:
    unit, energy = meter_of(field, "eastron-sdm120")
    response = await client.read_input_registers(0x0048, count=2, device_id=unit)
    (value,) = struct.unpack(">f", struct.pack(">HH", *response.registers))
    assert value == pytest.approx(energy, rel=1e-6)
    decoded = client.convert_from_registers(
        response.registers, client.DATATYPE.FLOAT32, word_order="big"
    )
    assert decoded == value


async def test_undefined_registers_answer_exception_02(
    field: FieldSimulator, client: AsyncModbusTcpClient
) -> None:
    unit, _ = meter_of(field, "acrel-ddsy1352")
    response = await client.read_holding_registers(0x0011, count=1, device_id=unit)
    assert response.isError()
    assert response.exception_code == 0x02


async def test_an_absent_unit_is_silent_and_the_bus_keeps_working(
    field: FieldSimulator, client: AsyncModbusTcpClient
) -> None:
    with pytest.raises(ModbusIOException):
        await client.read_holding_registers(0x0000, count=2, device_id=42)
    unit, _ = meter_of(field, "reference-prepaid")
    response = await client.read_holding_registers(0x0000, count=2, device_id=unit)
    assert not response.isError()


async def test_a_stopped_dtu_drops_connections_and_comes_back_on_its_port(
    field: FieldSimulator, client: AsyncModbusTcpClient
) -> None:
    dtu = field.dtus[0]
    port = dtu.port
    await dtu.stop()
    refused = AsyncModbusTcpClient(dtu.host, port=port, timeout=0.3, retries=0, reconnect_delay=0)
    assert not await refused.connect()
    refused.close()
    await dtu.start()
    assert dtu.port == port
    again = AsyncModbusTcpClient(dtu.host, port=port, timeout=0.3, retries=0)
    assert await again.connect()
    response = await again.read_holding_registers(0x0000, count=2, device_id=1)
    assert not response.isError()
    again.close()
