"""The simulator's Modbus PDU handling: each function code, each exception, silence."""

from __future__ import annotations

import struct
from datetime import datetime

import pytest
from simulator import SimClock, SimulatedMeter, handle_request

START = datetime(2025, 6, 1, 12, 30, 0)


class FrozenTime:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make_meter(profile: str = "reference-prepaid") -> tuple[SimulatedMeter, FrozenTime]:
    time = FrozenTime()
    meter = SimulatedMeter(
        meter_id="DTU0001-01",
        unit_id=1,
        profile=profile,
        base_load_kw=3.0,
        clock=SimClock(start=START, monotonic=time),
        initial_energy_kwh=1234.56,
    )
    return meter, time


def read(function: int, address: int, count: int) -> bytes:
    return struct.pack(">BHH", function, address, count)


def write_single(address: int, value: int) -> bytes:
    return struct.pack(">BHH", 0x06, address, value)


def write_multiple(address: int, values: list[int]) -> bytes:
    return struct.pack(f">BHHB{len(values)}H", 0x10, address, len(values), 2 * len(values), *values)


def words(reply: bytes) -> list[int]:
    assert reply[1] == len(reply) - 2
    return list(struct.unpack(f">{(len(reply) - 2) // 2}H", reply[2:]))


def uint32(high: int, low: int) -> int:
    return (high << 16) | low


def test_fc03_block_read_shows_energy_power_and_relay() -> None:
    meter, _time = make_meter()
    reply = handle_request(meter, read(0x03, 0x0000, 0x16))
    assert reply[0] == 0x03
    regs = words(reply)
    assert len(regs) == 0x16
    assert uint32(regs[0], regs[1]) == 123456
    tou = [uint32(regs[a], regs[a + 1]) for a in (2, 4, 6, 8)]
    assert all(abs(part - 123456 / 4) <= 1 for part in tou)
    power_w = uint32(regs[0x0C], regs[0x0D])
    assert power_w == round(meter.power_kw() * 1000)
    assert regs[0x0A] == round(meter.nominal_voltage_v * 10)
    assert regs[0x0E:0x10] == [0, 0]
    assert regs[0x10] == 0  # relay closed
    assert regs[0x11] == 0  # the command register reads as 0
    assert regs[0x15] == 0


def test_fc04_reads_the_same_block_as_fc03() -> None:
    meter, _time = make_meter()
    assert words(handle_request(meter, read(0x04, 0, 22))) == words(
        handle_request(meter, read(0x03, 0, 22))
    )


def test_fc06_trip_opens_the_relay_and_stops_energy() -> None:
    meter, time = make_meter()
    request = write_single(0x0011, 0x001A)
    assert handle_request(meter, request) == request  # the echo
    assert meter.relay == "open"
    regs = words(handle_request(meter, read(0x03, 0x0000, 0x16)))
    assert regs[0x10] == 1
    assert regs[0x15] & 1
    assert uint32(regs[0x0C], regs[0x0D]) == 0
    before = meter.energy_kwh()
    time.now += 3600
    assert meter.energy_kwh() == before
    assert handle_request(meter, write_single(0x0011, 0x001B)) == write_single(0x0011, 0x001B)
    assert meter.relay == "closed"


def test_fc16_sets_the_clock() -> None:
    meter, _time = make_meter()
    clock = [2030, 12, 31, 23, 59, 58]
    assert handle_request(meter, write_multiple(0x0020, clock))[0] == 0x10
    assert words(handle_request(meter, read(0x03, 0x0020, 6))) == clock


def test_exception_01_for_an_unsupported_function() -> None:
    meter, _time = make_meter()
    assert handle_request(meter, bytes([0x01, 0, 0, 0, 1])) == bytes([0x81, 0x01])
    assert handle_request(meter, bytes([0x2B, 0x0E, 0x01, 0x00])) == bytes([0xAB, 0x01])


@pytest.mark.parametrize(
    ("request_pdu", "function"),
    [
        (read(0x03, 0x0016, 1), 0x03),  # first undefined register after the block
        (read(0x03, 0x0000, 0x17), 0x03),  # the block plus one undefined register
        (read(0x04, 0x001F, 2), 0x04),
        (write_single(0x0000, 1), 0x06),  # energy is read-only
        (write_multiple(0x0010, [0, 0x1A]), 0x10),  # relay state is read-only
        (write_multiple(0x0012, [0, 5000, 1]), 0x10),  # credit and count: purchases only
    ],
)
def test_exception_02_for_undefined_or_read_only_registers(
    request_pdu: bytes, function: int
) -> None:
    meter, _time = make_meter()
    assert handle_request(meter, request_pdu) == bytes([function | 0x80, 0x02])


@pytest.mark.parametrize(
    ("request_pdu", "function"),
    [
        (read(0x03, 0, 0), 0x03),
        (read(0x03, 0, 126), 0x03),
        (read(0x04, 0, 126), 0x04),
        (write_multiple(0x0020, [1] * 124), 0x10),
        (struct.pack(">BHHB", 0x10, 0x0020, 0, 0), 0x10),
        (struct.pack(">BHHBH", 0x10, 0x0014, 1, 4, 1), 0x10),  # byte count disagrees
        (write_single(0x0011, 0x0099), 0x06),  # not a relay command
        (write_multiple(0x0020, [2025, 2, 30, 0, 0, 0]), 0x10),  # no 30 February
        (bytes([0x03, 0x00]), 0x03),  # truncated
    ],
)
def test_exception_03_for_bad_counts_and_values(request_pdu: bytes, function: int) -> None:
    meter, _time = make_meter()
    relay_before = meter.relay
    assert handle_request(meter, request_pdu) == bytes([function | 0x80, 0x03])
    assert meter.relay == relay_before


def test_a_rejected_multiple_write_changes_nothing() -> None:
    meter, _time = make_meter()
    # 0x0015 (status) is read-only, so the purchase count beside it is not written either.
    assert handle_request(meter, write_multiple(0x0014, [9, 1])) == bytes([0x90, 0x02])
    assert words(handle_request(meter, read(0x03, 0x0014, 1))) == [0]


def test_hold_power_refuses_a_trip_with_exception_04() -> None:
    meter, _time = make_meter()
    meter.hold_power = True
    assert handle_request(meter, write_single(0x0011, 0x001A)) == bytes([0x86, 0x04])
    assert meter.relay == "closed"
    assert words(handle_request(meter, read(0x03, 0x0015, 1))) == [0b10]


def test_no_meter_means_silence() -> None:
    assert handle_request(None, read(0x03, 0, 1)) == b""


def test_acrel_registers() -> None:
    meter, _time = make_meter("acrel-ddsy1352")
    regs = words(handle_request(meter, read(0x03, 0x0000, 0x11)))
    assert uint32(regs[0], regs[1]) == 123456
    power = regs[0x0D] - 0x10000 if regs[0x0D] & 0x8000 else regs[0x0D]
    assert power == round(meter.power_kw() * 1000)
    assert regs[0x10] == round(meter.power_factor * 1000)
    assert handle_request(meter, write_single(0x000A, 42)) == write_single(0x000A, 42)
    assert handle_request(meter, write_single(0x000A, 10000)) == bytes([0x86, 0x03])
    assert handle_request(meter, write_single(0x0011, 0x1A)) == bytes([0x86, 0x02])
    assert handle_request(meter, read(0x03, 0x0011, 1)) == bytes([0x83, 0x02])


def test_sdm120_floats() -> None:
    meter, _time = make_meter("eastron-sdm120")
    regs = words(handle_request(meter, read(0x04, 0x0048, 2)))
    (energy,) = struct.unpack(">f", struct.pack(">HH", *regs))
    assert energy == pytest.approx(1234.56, abs=1e-3)
    total = words(handle_request(meter, read(0x04, 0x0156, 2)))
    assert total == regs
    (power_w,) = struct.unpack(
        ">f", struct.pack(">HH", *words(handle_request(meter, read(0x04, 0x0C, 2))))
    )
    assert power_w == pytest.approx(meter.power_kw() * 1000, rel=1e-6)
    assert handle_request(meter, read(0x04, 0x0002, 2)) == bytes([0x84, 0x02])
