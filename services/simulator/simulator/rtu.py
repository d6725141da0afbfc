"""Modbus-RTU framing as a serial device server passes it through: address, PDU, CRC-16.

Over TCP there is no silent interval to end a frame, so a frame's length is worked out
from its function code, as the meter's UART would see it end.
"""

from __future__ import annotations


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16(data: bytes) -> int:
    """Return the Modbus CRC-16 (polynomial 0xA001 reflected, initial 0xFFFF)."""
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ byte) & 0xFF]
    return crc


def rtu_frame(address: int, pdu: bytes) -> bytes:
    """Return address + PDU + CRC (low byte first, as Modbus sends it)."""
    body = bytes([address]) + pdu
    return body + crc16(body).to_bytes(2, "little")


def crc_ok(frame: bytes) -> bool:
    """Tell whether a whole RTU frame's CRC matches."""
    return len(frame) >= 4 and crc16(frame[:-2]) == int.from_bytes(frame[-2:], "little")


# Request lengths by function code; 0x0F/0x10 carry a byte count at offset 6.
_FIXED_REQUEST_LENGTH = {0x01: 8, 0x02: 8, 0x03: 8, 0x04: 8, 0x05: 8, 0x06: 8}
_COUNTED_REQUEST = (0x0F, 0x10)


def request_length(buffer: bytes | bytearray) -> int | None:
    """Return the length of the RTU request at the start of ``buffer``; None: need more.

    An unknown function code takes whatever has arrived, as a gap on the line would end it.
    """
    if len(buffer) < 2:
        return None
    function = buffer[1]
    if function in _FIXED_REQUEST_LENGTH:
        length = _FIXED_REQUEST_LENGTH[function]
    elif function in _COUNTED_REQUEST:
        if len(buffer) < 7:
            return None
        length = 9 + buffer[6]
    else:
        return len(buffer)
    return length if len(buffer) >= length else None
