"""One simulated bus: RTU framing, who answers, and each injected meter fault."""

from __future__ import annotations

import random
import struct
from datetime import datetime

import pytest
from simulator import MeterFaults, SimClock, SimulatedMeter
from simulator import dlt645 as d
from simulator.bus import Rs485Bus
from simulator.registers import REGISTER_MAPS
from simulator.rtu import crc16, crc_ok, request_length, rtu_frame

CLOCK = SimClock(start=datetime(2025, 6, 1, 12, 0), monotonic=lambda: 0.0)


def meter(
    unit_id: int, profile: str = "reference-prepaid", energy: float = 100.0
) -> SimulatedMeter:
    return SimulatedMeter(
        meter_id=f"M{unit_id}",
        unit_id=unit_id,
        profile=profile,
        base_load_kw=1.0,
        clock=CLOCK,
        initial_energy_kwh=energy,
        address=f"{unit_id:012d}" if profile == "dlt645-2007" else None,
    )


def read_frame(unit_id: int, address: int = 0, count: int = 2) -> bytearray:
    return bytearray(rtu_frame(unit_id, struct.pack(">BHH", 3, address, count)))


def test_crc16_matches_the_modbus_reference_vector() -> None:
    # The textbook frame 01 03 00 00 00 0A carries CRC C5 CD.
    assert rtu_frame(1, bytes.fromhex("030000000A")).hex() == "01030000000ac5cd"
    assert crc16(b"123456789") == 0x4B37  # CRC-16/MODBUS check value


def test_request_length_from_the_function_code() -> None:
    assert request_length(read_frame(1)[:5]) is None
    assert request_length(read_frame(1)) == 8
    write = rtu_frame(1, struct.pack(">BHHB2H", 0x10, 0x20, 2, 4, 1, 2))
    assert request_length(write[:6]) is None
    assert request_length(write) == len(write)


def test_a_raw_read_is_answered_with_a_valid_rtu_frame() -> None:
    bus = Rs485Bus([meter(1, energy=12.34), meter(2)])
    buffer = read_frame(1)
    used, reply, wire = bus.take_raw(buffer)
    assert used == wire == 8
    assert reply is not None
    assert crc_ok(reply)
    assert reply[:3] == bytes([1, 3, 4])
    assert struct.unpack(">I", reply[3:7])[0] == 1234


def test_nobody_answers_an_empty_address_a_broadcast_or_a_bad_crc() -> None:
    bus = Rs485Bus([meter(1)])
    assert bus.take_raw(read_frame(9))[1] is None
    assert bus.take_raw(read_frame(0))[1] is None
    bad = read_frame(1)
    bad[-1] ^= 0xFF
    assert bus.take_raw(bad) == (8, None, 8)


def test_a_half_frame_waits_for_the_rest() -> None:
    bus = Rs485Bus([meter(1)])
    assert bus.take_raw(read_frame(1)[:6]) == (0, None, 0)


def test_dlt645_and_modbus_meters_share_a_bus() -> None:
    bus = Rs485Bus([meter(1), meter(2, "dlt645-2007", energy=55.5)])
    request = bytearray(d.encode_frame(f"{2:012d}", d.READ, d.ENERGY_FORWARD.to_bytes(4, "little")))
    used, reply, _wire = bus.take_raw(request)
    assert used == len(request)
    assert reply is not None
    _used, frame = d.decode_frame(reply)
    assert frame is not None
    assert d.from_bcd(frame.data[4:8]) == 5550
    assert bus.take_raw(read_frame(1))[1] is not None


def test_silent_meter_never_answers() -> None:
    bus = Rs485Bus([meter(1)])
    bus.faults["M1"] = MeterFaults(silent=True)
    assert bus.modbus(1, struct.pack(">BHH", 3, 0, 2)) is None
    assert bus.counters["silent"] == 1


def test_crc_errors_fail_the_check_and_are_counted() -> None:
    bus = Rs485Bus([meter(1)], rng=random.Random(5))
    bus.faults["M1"] = MeterFaults(crc_error_rate=1.0)
    for _ in range(50):
        _used, reply, _wire = bus.take_raw(read_frame(1))
        assert reply is not None
        assert not crc_ok(reply)
    assert bus.counters["crc_error"] == 50


def test_wrong_address_reply_comes_from_a_neighbour() -> None:
    bus = Rs485Bus([meter(1, energy=10.0), meter(2, energy=20.0)])
    bus.faults["M1"] = MeterFaults(wrong_address_rate=1.0)
    answer = bus.modbus(1, struct.pack(">BHH", 3, 0, 2))
    assert answer is not None
    unit, pdu, garbled, _delay = answer
    assert unit == 2
    assert not garbled
    assert struct.unpack(">I", pdu[2:6])[0] == 2000


def test_slow_reply_carries_its_delay() -> None:
    bus = Rs485Bus([meter(1)])
    bus.faults["M1"] = MeterFaults(slow_reply_rate=1.0, slow_reply_seconds=1.5)
    answer = bus.modbus(1, struct.pack(">BHH", 3, 0, 2))
    assert answer is not None
    assert answer[3] == 1.5


def test_fault_rates_are_chances() -> None:
    with pytest.raises(ValueError, match="chances"):
        MeterFaults(crc_error_rate=1.5)


@pytest.mark.parametrize(
    ("profile", "address", "count"),
    [
        ("eastron-sdm630", 0x0000, 0x0C),
        ("eastron-sdm630", 0x0034, 2),
        ("chint-ddsu666", 0x2000, 6),
        ("chint-ddsu666", 0x4000, 2),
        ("chint-dtsu666", 0x2006, 6),
        ("chint-dtsu666", 0x101E, 2),
        ("chint-dtsu666", 0x401E, 2),
        ("acrel-adl400", 0x0000, 2),
        ("acrel-adl400", 0x0061, 6),
        ("acrel-adl400", 0x008D, 2),
    ],
)
def test_field_register_maps_answer_their_documented_blocks(
    profile: str, address: int, count: int
) -> None:
    words = REGISTER_MAPS[profile].read(meter(1, profile), address, count)
    assert len(words) == count


def test_three_phase_maps_show_energy_in_their_own_units() -> None:
    m = meter(1, "acrel-adl400", energy=4321.09)
    high, low = REGISTER_MAPS["acrel-adl400"].read(m, 0, 2)
    assert (high << 16 | low) == 432109
    high, low = REGISTER_MAPS["chint-dtsu666"].read(meter(1, "chint-dtsu666", 4321.09), 0x101E, 2)
    assert struct.unpack(">f", struct.pack(">HH", high, low))[0] == pytest.approx(4321.09)
