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
WRITE = 0x14
BROADCAST_TIME = 0x08
REMOTE_CONTROL = 0x1C
REPLY = 0x80  # set in every answer from a meter (D7: slave to master)
ERROR = 0x40  # set with REPLY when the meter refuses
FOLLOWS = 0x20  # more data follows in another frame (not used by the items read here)
FUNCTION = 0x1F  # the function bits of a control code

# Error byte bits of a refusal (DL/T 645-2007 error status word).
ERR_OTHER = 0x01
ERR_NO_DATA = 0x02
ERR_PASSWORD = 0x04  # wrong password or unauthorised: meters count these toward lock-out

# Data identifiers (DI3 DI2 DI1 DI0 as written in the standard).
COMBINED_ENERGY = 0x00000000
FORWARD_ENERGY = 0x00010000
RATE_STEP = 0x100  # 00010100 is rate 1 of 00010000, ... 00010400 rate 4
BLOCK = 0xFF00  # 0001FF00: total then rates 1-4 in one answer
VOLTAGE_A = 0x02010100
CURRENT_A = 0x02020100
POWER_TOTAL = 0x02030000
DATE = 0x04000101
TIME = 0x04000102
METER_NUMBER = 0x04000402
STATUS_WORD_3 = 0x04000503
# Tariff rates 1-4 as State Grid meters number them.
RATES = ("sharp", "peak", "flat", "valley")

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


@dataclass(frozen=True)
class Scan:
    """What ``scan`` found: a frame and the bytes up to its end, or bytes to drop."""

    used: int  # bytes to drop from the front (the frame's end when ``frame`` is set)
    frame: Frame | None = None
    garbled: str = ""  # why the last complete candidate was not a frame


def scan(buffer: bytes) -> Scan:
    """Find the first well-formed frame anywhere in ``buffer``, resynchronising on ``68``.

    Stray bytes on the line (noise, a neighbour's half answer, a DTU's junk) come before
    the frame: each ``68`` is tried as a start, a candidate that fails its checksum or
    framing is skipped, and the next ``68`` is tried. ``used`` is 0 with no frame while a
    candidate is still arriving; otherwise it counts bytes that can never start a frame.
    """
    position = 0
    garbled = ""
    while True:
        start = buffer.find(b"\x68", position)
        if start < 0:
            # Nothing can start here; keep trailing FE bytes (a preamble arriving).
            keep = len(buffer) - len(buffer.rstrip(b"\xfe"))
            return Scan(len(buffer) - keep, None, garbled)
        try:
            used, frame = parse_frame(buffer[start:])
        except GarbledFrame as error:
            garbled = garbled or str(error)  # the first candidate's problem says most
            position = start + 1
            continue
        if frame is None:
            if _later_frame(buffer, start + 1):
                position = start + 1  # a false start (a stray 68) hides a whole frame
                continue
            return Scan(_preamble_start(buffer, start), None, garbled)
        return Scan(start + used, frame, garbled)


def _later_frame(buffer: bytes, position: int) -> bool:
    while (start := buffer.find(b"\x68", position)) >= 0:
        try:
            _used, frame = parse_frame(buffer[start:])
        except GarbledFrame:
            frame = None
        if frame is not None:
            return True
        position = start + 1
    return False


def _preamble_start(buffer: bytes, start: int) -> int:
    """Bytes before ``start`` that may go, keeping the FE preamble right before it."""
    while start > 0 and buffer[start - 1] == 0xFE:
        start -= 1
    return start


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


def credentials(password: str, operator: str) -> tuple[bytes, bytes]:
    """Return the password and operator code as sent, from their written forms.

    ``password`` is the privilege byte then the password as written (``02123456``: level 02,
    password 123456), sent PA P0 P1 P2: the level, then the password low byte first
    (``02 56 34 12``). The operator code is sent low byte first too. All-zero defaults hide
    the order; a real password does not.
    """
    if len(password) != 8 or len(operator) != 8:
        raise ValueError("password and operator code are 4 bytes (8 hex digits) each")
    secret = bytes.fromhex(password)
    return secret[:1] + secret[1:][::-1], bytes.fromhex(operator)[::-1]


def remote_control_frame(
    address: str, *, command: int, password: bytes, operator: bytes, expires: datetime
) -> bytes:
    """Build a remote control (0x1C) frame: trip, close and so on, until ``expires``.

    ``password`` and ``operator`` are as sent (``credentials`` orders them).
    """
    if len(password) != 4 or len(operator) != 4:
        raise ValueError("password and operator code are 4 bytes each")
    data = password + operator + bytes((command, 0)) + _clock_bytes(expires)
    return build_frame(Frame(address, REMOTE_CONTROL, data))


def write_frame(
    address: str, identifier: int, value: bytes, *, password: bytes, operator: bytes
) -> bytes:
    """Build a programmed write (0x14): DI, password, operator code, then the value."""
    if len(password) != 4 or len(operator) != 4:
        raise ValueError("password and operator code are 4 bytes each")
    data = _di_bytes(identifier) + password + operator + value
    return build_frame(Frame(address, WRITE, data))


def time_set_frames(
    address: str, at: datetime, *, password: bytes, operator: bytes
) -> tuple[bytes, bytes]:
    """The programmed time set: writes of 04000101 (date) and 04000102 (time)."""
    date, time = encode_clock(at)
    return (
        write_frame(address, DATE, date, password=password, operator=operator),
        write_frame(address, TIME, time, password=password, operator=operator),
    )


# --- replies ----------------------------------------------------------------------------------
class MeterRefused(Exception):
    """The meter answered with its error flag (0xD1, 0xDC...)."""

    def __init__(self, code: int) -> None:
        super().__init__(f"meter refused with error byte {code:#04x}")
        self.code = code

    @property
    def password(self) -> bool:
        """The meter says the password was wrong: never send it again unchanged."""
        return bool(self.code & ERR_PASSWORD)


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


SIGN = 0x80  # top bit of the most significant byte of a signed value


def signed_number(raw: bytes) -> int:
    """Return the integer of signed BCD bytes sent lowest first: the top bit is the sign."""
    if not raw:
        raise GarbledFrame("empty value")
    negative = bool(raw[-1] & SIGN)
    magnitude = bcd_number(raw[:-1] + bytes((raw[-1] & ~SIGN & 0xFF,)))
    return -magnitude if negative else magnitude


def encode_bcd(value: int, size: int, *, signed: bool = False) -> bytes:
    """Return ``size`` BCD bytes, lowest first (a negative value with the sign bit set)."""
    if value < 0 and not signed:
        raise ValueError(f"{value} is negative and the field is unsigned")
    raw = _bcd(abs(value), 2 * size)
    if signed:
        if raw[-1] & SIGN:
            raise ValueError(f"{value} does not fit {size} signed BCD bytes")
        if value < 0:
            raw = raw[:-1] + bytes((raw[-1] | SIGN,))
    return raw


def decode_energy(value: bytes, *, signed: bool = False) -> Decimal:
    """Return kWh from XXXXXX.XX (4 BCD bytes, lowest first; combined energy is signed)."""
    if len(value) != 4:
        raise GarbledFrame(f"energy is 4 bytes, got {len(value)}")
    number = signed_number(value) if signed else bcd_number(value)
    return Decimal(number) / 100


def encode_energy(kwh: Decimal, *, signed: bool = False) -> bytes:
    """Return the 4 BCD bytes a meter sends for ``kwh`` (the inverse of decode_energy)."""
    return encode_bcd(int(kwh * 100), 4, signed=signed)


def decode_energies(value: bytes, *, signed: bool = False) -> tuple[Decimal, ...]:
    """Return (total, rate 1, rate 2, rate 3, rate 4) kWh of a block read (xxxxFF00)."""
    if len(value) < 20 or len(value) % 4:
        raise GarbledFrame(f"an energy block is total and 4 rates (20 bytes), got {len(value)}")
    return tuple(decode_energy(value[i : i + 4], signed=signed) for i in range(0, 20, 4))


def decode_power(value: bytes) -> Decimal:
    """Return kW from XX.XXXX (3 signed BCD bytes)."""
    if len(value) != 3:
        raise GarbledFrame(f"power is 3 bytes, got {len(value)}")
    return Decimal(signed_number(value)) / 10_000


def decode_voltage(value: bytes) -> Decimal:
    """Return volts from XXX.X (2 BCD bytes)."""
    if len(value) != 2:
        raise GarbledFrame(f"voltage is 2 bytes, got {len(value)}")
    return Decimal(bcd_number(value)) / 10


def decode_current(value: bytes) -> Decimal:
    """Return amperes from XXX.XXX (3 signed BCD bytes)."""
    if len(value) != 3:
        raise GarbledFrame(f"current is 3 bytes, got {len(value)}")
    return Decimal(signed_number(value)) / 1000


def decode_meter_number(value: bytes) -> str:
    """Return the 12-digit meter number (04000402: 6 BCD bytes, lowest first)."""
    if len(value) != 6:
        raise GarbledFrame(f"a meter number is 6 bytes, got {len(value)}")
    return "".join(f"{_bcd_byte(b):02d}" for b in reversed(value))


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


def is_reply_to(frame: Frame, request: Frame) -> bool:
    """True if ``frame`` is a meter's answer to ``request`` (same address and function).

    A converter's echo of the request (no REPLY bit), a late answer of another meter or
    a late answer to another data identifier is not: the caller drops it and waits on.
    """
    if not frame.control & REPLY or frame.control & FUNCTION != request.control & FUNCTION:
        return False
    if frame.address != request.address:
        return False
    if request.control == READ and not frame.control & ERROR:
        return frame.data[:4] == request.data[:4]
    return True
