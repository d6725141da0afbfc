"""Modbus TCP (MBAP) framing: pure functions over bytes, no I/O.

A frame is the 7-byte MBAP header (transaction id, protocol id 0, length of what follows,
unit id) and a PDU (function code and data). Only what the collector sends is built:
read 03/04, write one register (06), write several (16).
"""

from __future__ import annotations

import struct

HEADER = 7
MAX_LENGTH = 254  # unit id + the largest PDU (253 bytes)


class Garbled(ValueError):
    """Bytes that cannot be the reply asked for."""


def frame(transaction: int, unit_id: int, pdu: bytes) -> bytes:
    """Wrap a PDU in its MBAP header."""
    return struct.pack(">HHHB", transaction, 0, len(pdu) + 1, unit_id) + pdu


def take_frame(buffer: bytearray) -> bytes | None:
    """Remove and return the first whole frame in ``buffer``; None until one is complete."""
    if len(buffer) < HEADER:
        return None
    protocol, length = struct.unpack_from(">HH", buffer, 2)
    if protocol != 0 or not 2 <= length <= MAX_LENGTH:
        raise Garbled(f"MBAP header with protocol {protocol} and length {length}")
    end = 6 + length
    if len(buffer) < end:
        return None
    whole = bytes(buffer[:end])
    del buffer[:end]
    return whole


def whole_frame(data: bytes) -> bool:
    """True if ``data`` is exactly one well-formed frame (what ``take_frame`` would take
    whole from an empty buffer, leaving nothing)."""
    if len(data) < HEADER:
        return False
    protocol: int
    length: int
    protocol, length = struct.unpack_from(">HH", data, 2)
    return protocol == 0 and 2 <= length <= MAX_LENGTH and len(data) == 6 + length


def transaction_of(whole: bytes) -> int:
    return int.from_bytes(whole[0:2], "big")


def unit_of(whole: bytes) -> int:
    return whole[6]


def pdu_of(whole: bytes) -> bytes:
    return whole[HEADER:]


def read_request(function: int, address: int, count: int) -> bytes:
    """The PDU reading ``count`` holding (03) or input (04) registers."""
    if function not in (3, 4) or not 1 <= count <= 125:
        raise ValueError(f"cannot read {count} registers with function {function}")
    return struct.pack(">BHH", function, address, count)


def read_reply(pdu: bytes, *, function: int, count: int) -> list[int]:
    """The registers of a read reply's PDU; Garbled unless it holds exactly ``count``."""
    if len(pdu) < 2 or pdu[0] != function:
        raise Garbled(f"not a reply to function {function}")
    if pdu[1] != 2 * count or len(pdu) != 2 + 2 * count:
        raise Garbled(f"{pdu[1]} data bytes for {count} registers")
    layout = _WORDS.get(count)
    if layout is None:
        layout = _WORDS[count] = struct.Struct(f">{count}H")
    return list(layout.unpack_from(pdu, 2))


_WORDS: dict[int, struct.Struct] = {}  # the layout of n big-endian words, by n


def write_request(address: int, value: int) -> bytes:
    """The PDU writing one holding register (06); the reply echoes it."""
    return struct.pack(">BHH", 6, address, value)


def write_many_request(address: int, values: list[int]) -> bytes:
    """The PDU writing consecutive holding registers (16); the reply is its first 5 bytes."""
    if not 1 <= len(values) <= 123:
        raise ValueError(f"cannot write {len(values)} registers in one request")
    return struct.pack(f">BHHB{len(values)}H", 16, address, len(values), 2 * len(values), *values)
