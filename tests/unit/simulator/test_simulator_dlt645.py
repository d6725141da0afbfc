"""The simulated DL/T 645-2007 meter: framing, reads, remote control, broadcast time."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from simulator import SimClock, SimulatedMeter
from simulator import dlt645 as d

START = datetime(2025, 6, 1, 12, 30, 0)  # a Sunday
ADDRESS = "000001000003"


def make_meter() -> SimulatedMeter:
    return SimulatedMeter(
        meter_id="DTU0001-03",
        unit_id=3,
        profile="dlt645-2007",
        base_load_kw=2.0,
        clock=SimClock(start=START, monotonic=lambda: 0.0),
        initial_energy_kwh=1234.56,
        address=ADDRESS,
    )


def ask(meter: SimulatedMeter, control: int, data: bytes, address: str = ADDRESS) -> d.Dlt645Frame:
    request = d.encode_frame(address, control, data)
    used, frame = d.decode_frame(request)
    assert used == len(request)
    assert frame is not None
    (reply,) = d.answer({ADDRESS: meter}, frame)
    used, decoded = d.decode_frame(reply)
    assert used == len(reply)
    assert decoded is not None
    assert decoded.address == ADDRESS
    return decoded


def read(meter: SimulatedMeter, identifier: int) -> d.Dlt645Frame:
    return ask(meter, d.READ, identifier.to_bytes(4, "little"))


def control(meter: SimulatedMeter, command: int, expires: datetime) -> d.Dlt645Frame:
    data = bytes.fromhex("02000000") + bytes(4) + bytes([command, 0]) + d.moment_bytes(expires)
    return ask(meter, d.REMOTE_CONTROL, data)


def test_frame_layout_follows_the_standard() -> None:
    frame = d.encode_frame(ADDRESS, d.READ, bytes.fromhex("00010000")[::-1])
    assert frame[:4] == b"\xfe" * 4
    assert frame[4] == 0x68
    assert frame[11] == 0x68
    assert frame[5:11] == bytes([0x03, 0x00, 0x00, 0x01, 0x00, 0x00])  # lowest byte first
    assert frame[12:14] == bytes([0x11, 4])
    assert frame[14:18] == bytes([0x33, 0x33, 0x34, 0x33])  # 00010000 + 0x33, LSB first
    assert frame[18] == sum(frame[4:18]) & 0xFF
    assert frame[19] == 0x16


def test_decoding_waits_for_a_whole_frame_and_drops_a_bad_checksum() -> None:
    frame = d.encode_frame(ADDRESS, d.READ, bytes(4))
    assert d.decode_frame(frame[:-1]) == (0, None)
    bad = bytearray(frame)
    bad[-2] ^= 0xFF
    assert d.decode_frame(bad) == (len(frame), None)


def test_energy_reads_as_bcd_hundredths() -> None:
    meter = make_meter()
    for identifier in (d.ENERGY_COMBINED, d.ENERGY_FORWARD):
        reply = read(meter, identifier)
        assert reply.control == 0x91
        assert reply.data[:4] == identifier.to_bytes(4, "little")
        assert d.from_bcd(reply.data[4:8]) == 123456


def test_date_time_and_status_word() -> None:
    meter = make_meter()
    date = read(meter, d.DATE).data[4:]
    assert date == bytes([0x00, 0x01, 0x06, 0x25])  # Sunday 2025-06-01, week day first
    assert read(meter, d.TIME).data[4:] == bytes([0x00, 0x30, 0x12])
    assert int.from_bytes(read(meter, d.STATUS_3).data[4:6], "little") & (1 << 4) == 0


def test_unknown_identifier_is_an_error_reply() -> None:
    reply = read(make_meter(), 0x12345678)
    assert reply.control == 0xD1
    assert reply.data == bytes([d.ERR_NO_DATA])


def test_remote_control_trips_and_closes_the_relay() -> None:
    meter = make_meter()
    later = START + timedelta(minutes=5)
    assert control(meter, d.TRIP, later).control == 0x9C
    assert meter.relay == "open"
    status = int.from_bytes(read(meter, d.STATUS_3).data[4:6], "little")
    assert status & d.STATUS_RELAY_OPEN
    assert control(meter, d.CLOSE_DIRECT, later).control == 0x9C
    assert meter.relay == "closed"


def test_expired_command_and_trip_under_hold_power_are_refused() -> None:
    meter = make_meter()
    reply = control(meter, d.TRIP, START - timedelta(seconds=1))
    assert reply.control == 0xDC
    assert meter.relay == "closed"
    meter.hold_power = True
    assert control(meter, d.TRIP, START + timedelta(minutes=5)).control == 0xDC
    assert meter.relay == "closed"


@pytest.mark.parametrize(
    ("offset_minutes", "accepted"), [(4, True), (-4, True), (6, False), (-6, False)]
)
def test_broadcast_time_is_accepted_only_within_five_minutes(
    offset_minutes: int, accepted: bool
) -> None:
    meter = make_meter()
    moment = START + timedelta(minutes=offset_minutes)
    frame = d.Dlt645Frame(d.BROADCAST, d.BROADCAST_TIME, d.moment_bytes(moment))
    assert d.answer({ADDRESS: meter}, frame) == []  # broadcasts are never answered
    assert (meter.meter_time() == moment) is accepted


def test_wildcard_address_reads_a_lone_meter_only() -> None:
    meter = make_meter()
    reply = ask(meter, d.READ_ADDRESS, b"", address=d.WILDCARD)
    assert reply.data == d.address_bytes(ADDRESS)
    frame = d.Dlt645Frame(d.WILDCARD, d.READ_ADDRESS, b"")
    assert d.answer({ADDRESS: meter, "000001000004": make_meter()}, frame) == []


def test_writes_are_refused_without_authentication() -> None:
    assert ask(make_meter(), d.WRITE, bytes(12)).control == 0xD4


def test_clock_drift_and_register_reset() -> None:
    now = [0.0]
    clock = SimClock(start=START, monotonic=lambda: now[0])
    meter = SimulatedMeter(
        meter_id="M",
        unit_id=1,
        profile="dlt645-2007",
        base_load_kw=1.0,
        clock=clock,
        initial_energy_kwh=100.0,
        address=ADDRESS,
    )
    meter.clock_drift_ppm = 100.0
    meter.energy_resets_at = clock.seconds() + 3600
    now[0] = 10_000.0
    assert meter.meter_time() - (START + timedelta(seconds=10_000)) == timedelta(seconds=1)
    # Reset after one hour; the remaining 10,000 - 3,600 s were counted from zero.
    assert 0 < meter.energy_kwh() < 100.0
