"""Modbus PDU handling and MBAP framing, as a meter behind a Modbus TCP gateway answers.

``handle_request`` is pure apart from the meter it is given: bytes in, bytes out.
"""

from __future__ import annotations

import struct

from simulator.meter import SimulatedMeter
from simulator.registers import (
    ILLEGAL_DATA_VALUE,
    ILLEGAL_FUNCTION,
    REGISTER_MAPS,
    ModbusError,
)

READ_HOLDING_REGISTERS = 0x03
READ_INPUT_REGISTERS = 0x04
WRITE_SINGLE_REGISTER = 0x06
WRITE_MULTIPLE_REGISTERS = 0x10
MAX_READ_COUNT = 125
MAX_WRITE_COUNT = 123

MBAP_HEADER = struct.Struct(">HHHB")  # transaction id, protocol id, length, unit id
MBAP_PROTOCOL = 0
# The length field counts the unit id and the PDU; a PDU is at most 253 bytes.
MAX_MBAP_LENGTH = 254


def handle_request(meter: SimulatedMeter | None, pdu: bytes) -> bytes:
    """Answer one request PDU; empty bytes mean silence (no meter at that address)."""
    if meter is None or not pdu:
        return b""
    function = pdu[0]
    try:
        if function in (READ_HOLDING_REGISTERS, READ_INPUT_REGISTERS):
            return _read(meter, pdu)
        if function == WRITE_SINGLE_REGISTER:
            return _write_single(meter, pdu)
        if function == WRITE_MULTIPLE_REGISTERS:
            return _write_multiple(meter, pdu)
        raise ModbusError(ILLEGAL_FUNCTION)
    except ModbusError as error:
        return bytes([(function | 0x80) & 0xFF, error.code])


def _read(meter: SimulatedMeter, pdu: bytes) -> bytes:
    if len(pdu) != 5:
        raise ModbusError(ILLEGAL_DATA_VALUE)
    address, count = struct.unpack(">HH", pdu[1:5])
    if not 1 <= count <= MAX_READ_COUNT:
        raise ModbusError(ILLEGAL_DATA_VALUE)
    words = REGISTER_MAPS[meter.profile].read(meter, address, count)
    return bytes([pdu[0], 2 * count]) + struct.pack(f">{count}H", *words)


def _write_single(meter: SimulatedMeter, pdu: bytes) -> bytes:
    if len(pdu) != 5:
        raise ModbusError(ILLEGAL_DATA_VALUE)
    address, value = struct.unpack(">HH", pdu[1:5])
    REGISTER_MAPS[meter.profile].write(meter, address, [value])
    return pdu  # the reply echoes the request


def _write_multiple(meter: SimulatedMeter, pdu: bytes) -> bytes:
    if len(pdu) < 6:
        raise ModbusError(ILLEGAL_DATA_VALUE)
    address, count, byte_count = struct.unpack(">HHB", pdu[1:6])
    if not 1 <= count <= MAX_WRITE_COUNT or byte_count != 2 * count or len(pdu) != 6 + byte_count:
        raise ModbusError(ILLEGAL_DATA_VALUE)
    values = struct.unpack(f">{count}H", pdu[6:])
    REGISTER_MAPS[meter.profile].write(meter, address, values)
    return pdu[:5]


def mbap_frame(transaction_id: int, unit_id: int, pdu: bytes) -> bytes:
    """Wrap a PDU in its MBAP header."""
    return MBAP_HEADER.pack(transaction_id, MBAP_PROTOCOL, len(pdu) + 1, unit_id) + pdu
