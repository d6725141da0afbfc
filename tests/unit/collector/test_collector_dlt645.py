"""DL/T 645-2007 frames: round trips, and garbled or foreign replies never become values."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest
from collector.domain import dlt645
from collector.domain.dlt645 import Frame, GarbledFrame
from hypothesis import given
from hypothesis import strategies as st

addresses = st.text(alphabet="0123456789", min_size=12, max_size=12)
controls = st.integers(min_value=0, max_value=255)
payloads = st.binary(max_size=60)
energies = st.integers(min_value=0, max_value=99_999_999).map(lambda n: Decimal(n) / 100)
clocks = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31))


@given(addresses, controls, payloads)
def test_a_frame_round_trips(address: str, control: int, data: bytes) -> None:
    wire = dlt645.build_frame(Frame(address, control, data))
    assert wire.startswith(dlt645.PREAMBLE)
    used, frame = dlt645.parse_frame(wire + b"\x68tail")
    assert used == len(wire)
    assert frame == Frame(address, control, data)


@given(addresses, controls, payloads, st.data())
def test_a_partial_frame_waits_for_more(
    address: str, control: int, data: bytes, draw: st.DataObject
) -> None:
    wire = dlt645.build_frame(Frame(address, control, data))
    cut = draw.draw(st.integers(min_value=0, max_value=len(wire) - 1))
    assert dlt645.parse_frame(wire[:cut]) == (0, None)


@given(addresses, payloads, st.data())
def test_a_flipped_byte_is_never_a_different_frame(
    address: str, data: bytes, draw: st.DataObject
) -> None:
    wire = bytearray(dlt645.build_frame(Frame(address, 0x91, data)))
    # Past the preamble: every byte is covered by the checksum, the framing or the length.
    index = draw.draw(st.integers(min_value=4, max_value=len(wire) - 1))
    wire[index] ^= draw.draw(st.integers(min_value=1, max_value=255))
    try:
        _used, frame = dlt645.parse_frame(bytes(wire))
    except GarbledFrame:
        return
    # A longer length byte can only make the frame look incomplete.
    assert frame is None


@given(energies)
def test_energy_round_trips(kwh: Decimal) -> None:
    assert dlt645.decode_energy(dlt645.encode_energy(kwh)) == kwh


@given(clocks)
def test_clock_round_trips(at: datetime) -> None:
    at = at.replace(microsecond=0)
    assert dlt645.decode_clock(*dlt645.encode_clock(at)) == at


def test_a_known_read_frame() -> None:
    # Read forward active energy from meter 000000000001 (worked by hand from the standard).
    wire = dlt645.read_frame("000000000001", dlt645.FORWARD_ENERGY)
    assert wire.hex(" ") == "fe fe fe fe 68 01 00 00 00 00 00 68 11 04 33 33 34 33 b3 16"


def test_a_reply_is_checked_against_the_request() -> None:
    value = dlt645.encode_energy(Decimal("1234.56"))
    wire = dlt645.read_reply_frame("000000000001", dlt645.FORWARD_ENERGY, value)
    _used, frame = dlt645.parse_frame(wire)
    assert frame is not None
    got = dlt645.read_value(frame, address="000000000001", identifier=dlt645.FORWARD_ENERGY)
    assert dlt645.decode_energy(got) == Decimal("1234.56")
    with pytest.raises(GarbledFrame, match="reply from 000000000001"):
        dlt645.read_value(frame, address="000000000002", identifier=dlt645.FORWARD_ENERGY)
    with pytest.raises(GarbledFrame, match="identifier"):
        dlt645.read_value(frame, address="000000000001", identifier=dlt645.COMBINED_ENERGY)
    refused = Frame("000000000001", 0xD1, b"\x02")
    with pytest.raises(dlt645.MeterRefused):
        dlt645.read_value(refused, address="000000000001", identifier=dlt645.FORWARD_ENERGY)


def test_bad_bcd_is_garbled() -> None:
    with pytest.raises(GarbledFrame, match="not BCD"):
        dlt645.decode_energy(b"\x1a\x00\x00\x00")
    with pytest.raises(GarbledFrame):
        dlt645.decode_clock(b"\x01\x32\x13\x26", b"\x00\x00\x00")  # 32nd of the 13th month


def test_garbage_before_a_frame_is_refused() -> None:
    with pytest.raises(GarbledFrame, match="not 0x68"):
        dlt645.parse_frame(b"\x00" + dlt645.read_frame("000000000001", dlt645.TIME))


def test_remote_control_and_broadcast_time_frames() -> None:
    expires = datetime(2026, 11, 27, 12, 0, 0)
    wire = dlt645.remote_control_frame(
        "123456789012",
        command=dlt645.TRIP,
        password=bytes.fromhex("02000000"),
        operator=bytes(4),
        expires=expires,
    )
    _used, frame = dlt645.parse_frame(wire)
    assert frame is not None
    assert (frame.address, frame.control) == ("123456789012", 0x1C)
    assert frame.data[8:10] == b"\x1a\x00"
    assert frame.data[10:] == bytes.fromhex("000012271126")
    _used, broadcast = dlt645.parse_frame(dlt645.broadcast_time_frame(expires))
    assert broadcast is not None
    assert (broadcast.address, broadcast.control) == (dlt645.BROADCAST, 0x08)


def test_relay_bit_of_status_word_3() -> None:
    assert dlt645.relay_open(b"\x10\x00")
    assert not dlt645.relay_open(b"\x00\x10")
    with pytest.raises(GarbledFrame):
        dlt645.relay_open(b"\x10")
