"""DL/T 645 as a field sends it: signed BCD, tariff-rate blocks, credentials low byte first,
and a parser that resynchronises, ignores echoes and tells late answers from ours."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from collector.domain import dlt645
from collector.domain.clock import judge_clock
from collector.domain.dlt645 import Frame
from collector.domain.stream import InboundStream
from hypothesis import given
from hypothesis import strategies as st

ADDRESS = "000000001234"
addresses = st.text(alphabet="0123456789", min_size=12, max_size=12)
# Junk that holds no 68: a 68 inside could start a frame of its own.
junk = st.binary(max_size=40).map(lambda b: b.replace(b"\x68", b"\x00"))


@given(st.integers(min_value=1, max_value=6), st.data())
def test_unsigned_bcd_round_trips(size: int, data: st.DataObject) -> None:
    value = data.draw(st.integers(min_value=0, max_value=10 ** (2 * size) - 1))
    raw = dlt645.encode_bcd(value, size)
    assert len(raw) == size
    assert dlt645.bcd_number(raw) == value


@given(st.integers(min_value=1, max_value=6), st.data())
def test_signed_bcd_round_trips_with_the_sign_in_the_top_bit(
    size: int, data: st.DataObject
) -> None:
    limit = 8 * 10 ** (2 * size - 1) - 1  # the top digit holds 0-7 beside the sign bit
    value = data.draw(st.integers(min_value=-limit, max_value=limit))
    raw = dlt645.encode_bcd(value, size, signed=True)
    assert dlt645.signed_number(raw) == value
    assert bool(raw[-1] & 0x80) == (value < 0)


@given(st.integers(min_value=-79_999_999, max_value=79_999_999))
def test_signed_energy_round_trips(hundredths: int) -> None:
    kwh = Decimal(hundredths) / 100
    assert dlt645.decode_energy(dlt645.encode_energy(kwh, signed=True), signed=True) == kwh


def test_minus_four_hundredths_is_not_eight_hundred_thousand() -> None:
    raw = bytes((0x04, 0x00, 0x00, 0x80))  # what the meter sends for -0.04 kWh
    assert dlt645.decode_energy(raw, signed=True) == Decimal("-0.04")
    # Read as unsigned, the sign bit is a digit: the fault the profile's energy kind avoids.
    assert dlt645.decode_energy(raw) == Decimal("800000.04")


def test_bcd_refuses_non_digits() -> None:
    with pytest.raises(dlt645.GarbledFrame):
        dlt645.bcd_number(b"\x1a")
    with pytest.raises(ValueError, match="does not fit"):
        dlt645.encode_bcd(800_000, 3, signed=True)


def test_an_energy_block_is_total_then_four_rates() -> None:
    values = [Decimal("100.00"), Decimal("1.10"), Decimal("2.20"), Decimal("3.30"), Decimal("-4")]
    block = b"".join(dlt645.encode_energy(v, signed=True) for v in values)
    assert dlt645.decode_energies(block, signed=True) == tuple(values)
    with pytest.raises(dlt645.GarbledFrame):
        dlt645.decode_energies(block[:16])


def test_power_voltage_current_and_meter_number() -> None:
    assert dlt645.decode_power(dlt645.encode_bcd(-12_345, 3, signed=True)) == Decimal("-1.2345")
    assert dlt645.decode_voltage(dlt645.encode_bcd(2305, 2)) == Decimal("230.5")
    assert dlt645.decode_current(dlt645.encode_bcd(5120, 3)) == Decimal("5.12")
    assert dlt645.decode_meter_number(bytes.fromhex("563412000000")) == "000000123456"


def test_password_and_operator_travel_low_byte_first() -> None:
    password, operator = dlt645.credentials("02123456", "12345678")
    assert password == bytes((0x02, 0x56, 0x34, 0x12))  # PA, then P0 P1 P2
    assert operator == bytes((0x78, 0x56, 0x34, 0x12))
    wire = dlt645.remote_control_frame(
        ADDRESS,
        command=dlt645.TRIP,
        password=password,
        operator=operator,
        expires=datetime(2026, 12, 7, 12, 5, 0),
    )
    _used, frame = dlt645.parse_frame(wire)
    assert frame is not None
    assert frame.data[:8] == password + operator


def test_a_programmed_time_set_carries_the_password_before_the_value() -> None:
    password, operator = dlt645.credentials("02123456", "00000001")
    date, time = dlt645.time_set_frames(
        ADDRESS, datetime(2026, 12, 7, 8, 30, 15), password=password, operator=operator
    )
    _used, frame = dlt645.parse_frame(time)
    assert frame is not None
    assert frame.control == dlt645.WRITE
    assert frame.data == (
        dlt645.TIME.to_bytes(4, "little") + password + operator + bytes((0x15, 0x30, 0x08))
    )
    _used, frame = dlt645.parse_frame(date)
    assert frame is not None
    assert frame.data[:4] == dlt645.DATE.to_bytes(4, "little")


def reply(address: str = ADDRESS, identifier: int = dlt645.FORWARD_ENERGY) -> bytes:
    return dlt645.read_reply_frame(address, identifier, dlt645.encode_energy(Decimal("12.34")))


@given(junk, addresses)
def test_the_parser_resynchronises_after_stray_bytes(noise: bytes, address: str) -> None:
    wire = reply(address)
    found = dlt645.scan(noise + wire)
    assert found.frame is not None
    assert found.frame.address == address
    assert found.used == len(noise) + len(wire)


def test_a_stray_68_that_never_completes_does_not_hide_the_answer() -> None:
    # A stray 68 whose "length" runs far past the buffer, then the whole answer.
    wire = reply()
    found = dlt645.scan(b"\x68\x01\x02\x03\x04\x05\x06\x68\x91\xc8" + wire)
    assert found.frame is not None
    assert found.used == 10 + len(wire)


def test_a_garbled_frame_is_reported_and_dropped() -> None:
    wire = bytearray(reply())
    wire[-2] ^= 0xFF  # the checksum
    found = dlt645.scan(bytes(wire))
    assert found.frame is None
    assert found.garbled == "checksum mismatch"
    assert found.used == len(wire)


@given(st.data())
def test_a_partial_answer_waits(data: st.DataObject) -> None:
    wire = reply()
    cut = data.draw(st.integers(min_value=0, max_value=len(wire) - 1))
    found = dlt645.scan(wire[:cut])
    assert found.frame is None
    assert found.garbled == ""
    # Nothing of the answer so far is dropped (only bytes before its preamble could be).
    assert found.used == 0


def test_echoes_late_answers_and_neighbours_are_not_the_reply() -> None:
    request = Frame(ADDRESS, dlt645.READ, dlt645.FORWARD_ENERGY.to_bytes(4, "little"))
    echo = dlt645.scan(dlt645.read_frame(ADDRESS, dlt645.FORWARD_ENERGY)).frame
    assert echo is not None
    assert not dlt645.is_reply_to(echo, request)
    late = dlt645.scan(reply(identifier=dlt645.STATUS_WORD_3)).frame
    assert late is not None
    assert not dlt645.is_reply_to(late, request)  # the answer to an earlier read
    neighbour = dlt645.scan(reply(address="000000001235")).frame
    assert neighbour is not None
    assert not dlt645.is_reply_to(neighbour, request)
    ours = dlt645.scan(reply()).frame
    assert ours is not None
    assert dlt645.is_reply_to(ours, request)
    refusal = Frame(ADDRESS, dlt645.READ | dlt645.REPLY | dlt645.ERROR, b"\x02")
    assert dlt645.is_reply_to(refusal, request)


def test_a_refused_password_is_marked_final() -> None:
    assert dlt645.MeterRefused(dlt645.ERR_PASSWORD).password
    assert not dlt645.MeterRefused(dlt645.ERR_OTHER).password


def test_a_heartbeat_between_two_pieces_of_a_reply_is_stripped_when_asked() -> None:
    wire = reply()
    stream = InboundStream(registration=b"LOGIN:D1")
    stream.heartbeat_inside_frames = True
    stream.feed(wire[:9])
    stream.feed(b"HB")
    stream.feed(wire[9:])
    assert bytes(stream.buffer) == wire
    assert stream.heartbeats == 1


NOW = datetime(2026, 12, 7, 12, 0, 0)


def dlt645_judgement(drift: timedelta, *, can_set: bool) -> str:
    judgement = judge_clock(
        NOW + drift,
        NOW,
        tolerance_seconds=30,
        max_set_seconds=3600,
        broadcast_seconds=300,
        can_set=can_set,
    )
    return judgement.verdict


def test_a_clock_is_corrected_only_as_the_protocol_allows() -> None:
    assert dlt645_judgement(timedelta(seconds=20), can_set=False) == "in_time"
    assert dlt645_judgement(timedelta(minutes=4), can_set=False) == "broadcast"
    assert dlt645_judgement(timedelta(minutes=-4), can_set=True) == "broadcast"
    # Beyond the broadcast's ±5 minutes: the programmed set, or a report.
    assert dlt645_judgement(timedelta(minutes=7), can_set=True) == "set"
    assert dlt645_judgement(timedelta(minutes=7), can_set=False) == "anomaly"
    assert dlt645_judgement(timedelta(hours=2), can_set=True) == "anomaly"
