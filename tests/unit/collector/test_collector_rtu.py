"""Raw Modbus RTU frames: CRC, and replies that do not match the request are garbled."""

from __future__ import annotations

import struct

import pytest
from collector.domain.rtu import (
    GarbledFrame,
    RtuReply,
    crc16,
    parse_reply,
    read_request,
    with_crc,
    write_multiple_request,
    write_single_request,
)
from hypothesis import given
from hypothesis import strategies as st
from pymodbus.framer.rtu import FramerRTU

units = st.integers(min_value=1, max_value=247)
words = st.lists(st.integers(min_value=0, max_value=0xFFFF), min_size=1, max_size=125)


def read_reply(unit: int, function: int, values: list[int]) -> bytes:
    body = struct.pack(f">BBB{len(values)}H", unit, function, 2 * len(values), *values)
    return with_crc(body)


def test_crc_of_a_known_frame() -> None:
    # 01 03 00 00 00 0A -> CRC C5 CD, the classic example.
    assert read_request(1, 3, 0, 10).frame.hex(" ") == "01 03 00 00 00 0a c5 cd"
    assert crc16(b"") == 0xFFFF


def bitwise_crc16(data: bytes) -> int:
    """The CRC as the Modbus spec states it, bit by bit: the oracle for the table."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


@given(st.binary(max_size=300))
def test_the_table_driven_crc_equals_the_specs_and_pymodbus(data: bytes) -> None:
    crc = crc16(data)
    assert crc == bitwise_crc16(data)
    # pymodbus keeps the two bytes in wire order (low byte first) as a big-endian number.
    assert FramerRTU.compute_CRC(data) == int.from_bytes(crc.to_bytes(2, "little"), "big")


@given(units, st.sampled_from([3, 4]), words)
def test_a_read_reply_round_trips(unit: int, function: int, values: list[int]) -> None:
    request = read_request(unit, function, 0x10, len(values))
    wire = read_reply(unit, function, values)
    assert parse_reply(wire + b"\x00", request) == (len(wire), RtuReply(words=tuple(values)))
    for cut in range(len(wire)):
        assert parse_reply(wire[:cut], request) == (0, None)


@given(units, words, st.data())
def test_a_corrupted_reply_is_never_a_value(
    unit: int, values: list[int], draw: st.DataObject
) -> None:
    request = read_request(unit, 3, 0, len(values))
    wire = bytearray(read_reply(unit, 3, values))
    index = draw.draw(st.integers(min_value=0, max_value=len(wire) - 1))
    wire[index] ^= draw.draw(st.integers(min_value=1, max_value=255))
    try:
        used, reply = parse_reply(bytes(wire), request)
    except GarbledFrame:
        return
    # Only a corrupted byte count can leave it waiting for more: never a value.
    assert (used, reply) == (0, None)


def test_wrong_address_and_exceptions() -> None:
    request = read_request(5, 3, 0, 2)
    with pytest.raises(GarbledFrame, match="address 6"):
        parse_reply(read_reply(6, 3, [1, 2]), request)
    with pytest.raises(GarbledFrame, match="function"):
        parse_reply(read_reply(5, 4, [1, 2]), request)
    with pytest.raises(GarbledFrame, match="data bytes"):
        parse_reply(read_reply(5, 3, [1, 2, 3]), request)
    exception = with_crc(bytes((5, 0x83, 2)))
    assert parse_reply(exception, request) == (5, RtuReply(exception_code=2))


def test_writes_are_acknowledged_by_their_echo() -> None:
    single = write_single_request(3, 0x11, 0x1A)
    assert parse_reply(single.frame, single) == (8, RtuReply())
    many = write_multiple_request(3, 0x20, [2026, 11, 27, 12, 0, 0])
    echo = with_crc(many.frame[:6])
    assert parse_reply(echo, many) == (8, RtuReply())
    wrong = with_crc(bytes((3, 6, 0, 0x11, 0, 0x1B)))
    with pytest.raises(GarbledFrame, match="echo"):
        parse_reply(wrong, single)
