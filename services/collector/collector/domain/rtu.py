"""Modbus RTU frames (address, PDU, CRC-16) as bytes: pure, for links that carry raw RTU.

A serial device server in transparent mode and a DTU in client mode both forward bytes to
the RS485 bus unchanged, so the collector builds and checks the RTU frames itself. A reply
whose CRC, address or function does not match the request is garbled: never a value.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass


class GarbledFrame(ValueError):
    """Bytes that are not the reply to the request in flight (CRC, address, length...)."""


def _crc_table() -> tuple[int, ...]:
    """The CRC-16 of each byte value alone: one lookup per byte instead of eight shifts."""
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16(data: bytes) -> int:
    """Return the Modbus CRC-16 (polynomial 0xA001 reflected, initial 0xFFFF), table-driven:
    every request and reply of a raw RTU link passes through here (issue 17's poll cost)."""
    crc = 0xFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc


def with_crc(body: bytes) -> bytes:
    """Append the CRC, low byte first as RTU sends it."""
    return body + struct.pack("<H", crc16(body))


@dataclass(frozen=True)
class RtuRequest:
    """One request and what a well-formed reply to it looks like."""

    unit: int
    function: int
    frame: bytes
    # Registers a read expects; 0 for writes.
    count: int = 0


def read_request(unit: int, function: int, address: int, count: int) -> RtuRequest:
    """Build an FC03/FC04 read of ``count`` registers."""
    if function not in (3, 4):
        raise ValueError(f"function {function} is not a register read")
    body = struct.pack(">BBHH", unit, function, address, count)
    return RtuRequest(unit, function, with_crc(body), count)


def write_single_request(unit: int, address: int, value: int) -> RtuRequest:
    """Build an FC06 write of one holding register."""
    return RtuRequest(unit, 6, with_crc(struct.pack(">BBHH", unit, 6, address, value)))


def write_multiple_request(unit: int, address: int, values: list[int]) -> RtuRequest:
    """Build an FC16 write of consecutive holding registers."""
    count = len(values)
    body = struct.pack(f">BBHHB{count}H", unit, 16, address, count, 2 * count, *values)
    return RtuRequest(unit, 16, with_crc(body))


@dataclass(frozen=True)
class RtuReply:
    """A checked reply: register words for a read, nothing for a write, or an exception."""

    words: tuple[int, ...] = ()
    exception_code: int | None = None


def parse_reply(buffer: bytes, request: RtuRequest) -> tuple[int, RtuReply | None]:
    """Return (bytes used, reply), or (0, None) while the reply is incomplete.

    Raises GarbledFrame for bytes that cannot be this request's reply.
    """
    if not buffer:
        return 0, None
    if buffer[0] != request.unit:
        raise GarbledFrame(f"reply from address {buffer[0]}, asked {request.unit}")
    if len(buffer) < 2:
        return 0, None
    function = buffer[1]
    if function == request.function | 0x80:
        length = 5
    elif function != request.function:
        raise GarbledFrame(f"reply to function {function:#04x}, asked {request.function:#04x}")
    elif request.function in (3, 4):
        if len(buffer) < 3:
            return 0, None
        if buffer[2] != 2 * request.count:
            raise GarbledFrame(f"{buffer[2]} data bytes, asked {2 * request.count}")
        length = 5 + buffer[2]
    else:
        length = 8
    if len(buffer) < length:
        return 0, None
    frame = buffer[:length]
    if struct.unpack("<H", frame[-2:])[0] != crc16(frame[:-2]):
        raise GarbledFrame("CRC mismatch")
    if function & 0x80:
        return length, RtuReply(exception_code=frame[2])
    if request.function in (3, 4):
        words = struct.unpack(f">{request.count}H", frame[3:-2])
        return length, RtuReply(words=tuple(words))
    if frame[:6] != request.frame[:6]:
        raise GarbledFrame("write echo differs from the request")
    return length, RtuReply()
