"""DL/T 645-2007 frames: pure build and parse, and the data items the collector uses.

Frame: optional ``FE`` preamble, ``68``, address (6 BCD bytes, lowest first), ``68``,
control, length, data (each byte +0x33), checksum (sum mod 256 from the first ``68``), ``16``.
A reply with a bad checksum, bad BCD, the wrong address or the wrong data identifier is
garbled and never becomes a value.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

PREAMBLE = b"\xfe\xfe\xfe\xfe"
BROADCAST = "999999999999"

READ = 0x11
BROADCAST_TIME = 0x08
REMOTE_CONTROL = 0x1C
REPLY = 0x80  # set in every answer from a meter
ERROR = 0x40  # set with REPLY when the meter refuses

# Data identifiers (DI3 DI2 DI1 DI0 as written in the standard).
COMBINED_ENERGY = 0x00000000
FORWARD_ENERGY = 0x00010000
DATE = 0x04000101
TIME = 0x04000102
STATUS_WORD_3 = 0x04000503

# Remote control commands (N1).
TRIP = 0x1A
CLOSE_ALLOWED = 0x1B
DIRECT_CLOSE = 0x1C
HOLD_ON = 0x3A
HOLD_OFF = 0x3B

MIN_FRAME = 12  # 68 A0..A5 68 C L CS 16


class GarbledFrame(ValueError):
    """Bytes that are not a well-formed DL/T 645 frame, or not the answer expected."""


@dataclass(frozen=True)
class Frame:
    """One frame, data already without its +0x33."""

    address: str
    control: int
    data: bytes


def encode_address(address: str) -> bytes:
    """Turn a 12-digit address into its 6 BCD bytes, lowest byte first."""
    if len(address) != 12 or not address.isdigit():
        raise ValueError(f"a DL/T 645 address is 12 decimal digits, not {address!r}")
    return bytes(int(address[i : i + 2], 16) for i in range(10, -1, -2))


def decode_address(raw: bytes) -> str:
    """Return the 12-digit address of 6 BCD bytes (``AA`` wildcard bytes are refused)."""
    return "".join(f"{_bcd_byte(b):02d}" for b in reversed(raw))


def build_frame(frame: Frame) -> bytes:
    """Return the bytes on the wire, with the FE preamble that wakes the line."""
    if len(frame.data) > 200:
        raise ValueError("data longer than 200 bytes")
    body = (
        b"\x68"
        + encode_address(frame.address)
        + b"\x68"
        + bytes((frame.control, len(frame.data)))
        + bytes((b + 0x33) & 0xFF for b in frame.data)
    )
    return PREAMBLE + body + bytes((sum(body) & 0xFF, 0x16))


def parse_frame(buffer: bytes) -> tuple[int, Frame | None]:
    """Return (bytes used, frame), or (0, None) while the frame is incomplete.

    Leading ``FE`` bytes are skipped; anything else before ``68`` is garbage.
    """
    start = 0
    while start < len(buffer) and buffer[start] == 0xFE:
        start += 1
    if start == len(buffer):
        return 0, None
    if buffer[start] != 0x68:
        raise GarbledFrame(f"frame starts with {buffer[start]:#04x}, not 0x68")
    if len(buffer) - start < MIN_FRAME:
        return 0, None
    if buffer[start + 7] != 0x68:
        raise GarbledFrame("second 0x68 missing")
    length = buffer[start + 9]
    end = start + MIN_FRAME + length
    if len(buffer) < end:
        return 0, None
    body = buffer[start : end - 2]
    if sum(body) & 0xFF != buffer[end - 2]:
        raise GarbledFrame("checksum mismatch")
    if buffer[end - 1] != 0x16:
        raise GarbledFrame("end byte is not 0x16")
    try:
        address = decode_address(body[1:7])
    except ValueError as error:
        raise GarbledFrame(str(error)) from None
    data = bytes((b - 0x33) & 0xFF for b in body[10:])
    return end, Frame(address=address, control=body[8], data=data)


# --- requests -------------------------------------------------------------------------------
def _di_bytes(identifier: int) -> bytes:
    return identifier.to_bytes(4, "little")


def read_frame(address: str, identifier: int) -> bytes:
    """Build a read (0x11) of one data identifier."""
    return build_frame(Frame(address, READ, _di_bytes(identifier)))


def _bcd(value: int, digits: int) -> bytes:
    text = f"{value:0{digits}d}"
    if len(text) != digits:
        raise ValueError(f"{value} does not fit {digits} BCD digits")
    return bytes(int(text[i : i + 2], 16) for i in range(digits - 2, -1, -2))


def _clock_bytes(at: datetime) -> bytes:
    # ssmmhhDDMMYY, each byte BCD, seconds first.
    return b"".join(
        _bcd(v, 2) for v in (at.second, at.minute, at.hour, at.day, at.month, at.year % 100)
    )


def broadcast_time_frame(at: datetime) -> bytes:
    """Build a broadcast time set (0x08); meters accept it only near their own clock."""
    return build_frame(Frame(BROADCAST, BROADCAST_TIME, _clock_bytes(at)))


def remote_control_frame(
    address: str, *, command: int, password: bytes, operator: bytes, expires: datetime
) -> bytes:
    """Build a remote control (0x1C) frame: trip, close and so on, until ``expires``."""
    if len(password) != 4 or len(operator) != 4:
        raise ValueError("password and operator code are 4 bytes each")
    data = password + operator + bytes((command, 0)) + _clock_bytes(expires)
    return build_frame(Frame(address, REMOTE_CONTROL, data))


# --- replies ----------------------------------------------------------------------------------
class MeterRefused(Exception):
    """The meter answered with its error flag (0xD1, 0xDC...)."""

    def __init__(self, code: int) -> None:
        super().__init__(f"meter refused with error byte {code:#04x}")
        self.code = code


def check_reply(frame: Frame, *, address: str, control: int) -> bytes:
    """Return a reply's data if it answers ``control`` from ``address``; raise otherwise."""
    if frame.address != address:
        raise GarbledFrame(f"reply from {frame.address}, asked {address}")
    if frame.control == control | REPLY | ERROR:
        raise MeterRefused(frame.data[0] if frame.data else 0)
    if frame.control != control | REPLY:
        raise GarbledFrame(f"reply control {frame.control:#04x} to request {control:#04x}")
    return frame.data


def read_value(frame: Frame, *, address: str, identifier: int) -> bytes:
    """Return the value bytes of a read reply for ``identifier``."""
    data = check_reply(frame, address=address, control=READ)
    if data[:4] != _di_bytes(identifier):
        raise GarbledFrame(f"reply is for identifier {data[:4][::-1].hex()}")
    return data[4:]


def _bcd_byte(byte: int) -> int:
    high, low = byte >> 4, byte & 0x0F
    if high > 9 or low > 9:
        raise GarbledFrame(f"{byte:#04x} is not BCD")
    return high * 10 + low


def bcd_number(raw: bytes) -> int:
    """Return the integer of BCD bytes sent lowest first."""
    value = 0
    for byte in reversed(raw):
        value = value * 100 + _bcd_byte(byte)
    return value


def decode_energy(value: bytes) -> Decimal:
    """Return kWh from XXXXXX.XX (4 BCD bytes, lowest first)."""
    if len(value) != 4:
        raise GarbledFrame(f"energy is 4 bytes, got {len(value)}")
    return Decimal(bcd_number(value)) / 100


def encode_energy(kwh: Decimal) -> bytes:
    """Return the 4 BCD bytes a meter sends for ``kwh`` (the inverse of decode_energy)."""
    return _bcd(int(kwh * 100), 8)


def decode_clock(date: bytes, time: bytes) -> datetime:
    """Return the meter's clock from 04000101 (WWDDMMYY) and 04000102 (ssmmhh) values."""
    if len(date) != 4 or len(time) != 3:
        raise GarbledFrame("date is 4 bytes and time 3")
    _weekday, day, month, year = (_bcd_byte(b) for b in date)
    second, minute, hour = (_bcd_byte(b) for b in time)
    try:
        return datetime(2000 + year, month, day, hour, minute, second)
    except ValueError as error:
        raise GarbledFrame(f"not a clock: {error}") from None


def encode_clock(at: datetime) -> tuple[bytes, bytes]:
    """Return the (date, time) values a meter sends for ``at`` (naive, the meter's time)."""
    weekday = (at.weekday() + 1) % 7  # the standard counts Sunday as 0
    date = b"".join(_bcd(v, 2) for v in (weekday, at.day, at.month, at.year % 100))
    time = b"".join(_bcd(v, 2) for v in (at.second, at.minute, at.hour))
    return date, time


def relay_open(status_word_3: bytes) -> bool:
    """Return True if status word 3 says the relay is open (bit 4)."""
    if len(status_word_3) != 2:
        raise GarbledFrame(f"status word is 2 bytes, got {len(status_word_3)}")
    return bool(int.from_bytes(status_word_3, "little") & 0x0010)


def hold_power_on(status_word_3: bytes) -> bool:
    """Return True if status word 3 says hold-power (保电) is on (bit 12)."""
    if len(status_word_3) != 2:
        raise GarbledFrame(f"status word is 2 bytes, got {len(status_word_3)}")
    return bool(int.from_bytes(status_word_3, "little") & 0x1000)


def read_reply_frame(address: str, identifier: int, value: bytes) -> bytes:
    """Build a meter's answer to a read (tests and the simulator's mirror)."""
    return build_frame(Frame(address, READ | REPLY, _di_bytes(identifier) + value))
