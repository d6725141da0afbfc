"""DL/T 645-2007 as a simulated meter speaks it: frames, data identifiers, remote control.

Frame: optional FE preamble, 68, address (6 BCD bytes, lowest first), 68, control, length,
data (each byte +0x33), checksum (sum mod 256 from the first 68), 16. Multi-byte values go
least significant byte first. ``answer`` is pure apart from the meters it is given.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from simulator.loadcurve import PERIODS, Period
from simulator.meter import SimulatedMeter
from simulator.registers import hundredths

PREAMBLE = b"\xfe\xfe\xfe\xfe"
START = 0x68
END = 0x16
BROADCAST = "999999999999"
WILDCARD = "AAAAAAAAAAAA"

READ = 0x11
READ_ADDRESS = 0x13
WRITE = 0x14
BROADCAST_TIME = 0x08
REMOTE_CONTROL = 0x1C
REPLY = 0x80  # set in every answer
ERROR = 0x40  # set in an error answer

# Error byte of a refused read or control (DL/T 645-2007 error word bits).
ERR_OTHER = 0x01
ERR_NO_DATA = 0x02
ERR_UNAUTHORISED = 0x04

TRIP = 0x1A
CLOSE_ALLOWED = 0x1B
CLOSE_DIRECT = 0x1C
ALARM_ON, ALARM_OFF = 0x2A, 0x2B
HOLD_ON, HOLD_OFF = 0x3A, 0x3B

ENERGY_COMBINED = 0x00000000
ENERGY_FORWARD = 0x00010000
RATE_STEP = 0x100  # rate n of a total is the total + n * 0x100 (rates 1-4)
BLOCK = 0xFF00  # the total then rates 1-4 in one answer
METER_NUMBER = 0x04000402
VOLTAGE_A = 0x02010100
VOLTAGE_BLOCK = 0x0201FF00
CURRENT_A = 0x02020100
CURRENT_BLOCK = 0x0202FF00
POWER_TOTAL = 0x02030000
POWER_BLOCK = 0x0203FF00
DATE = 0x04000101
TIME = 0x04000102
STATUS_3 = 0x04000503
REMAINING_MONEY = 0x00900200
OVERDRAFT_MONEY = 0x00900201
PURCHASE_COUNT = 0x03330201

STATUS_RELAY_OPEN = 1 << 4
STATUS_HOLD_POWER = 1 << 12
# Broadcast time is accepted only this close to the meter's own clock (the standard: ±5 min).
BROADCAST_TIME_WINDOW = timedelta(minutes=5)
SIGN = 0x80


@dataclass
class Dlt645Quirks:
    """What one DL/T 645 meter accepts and shows beyond the common behaviour.

    ``password`` and ``operator`` are as they travel (PA P0 P1 P2, C0..C3: low byte first);
    ``operator`` None takes any. ``close_direct`` False is a meter with only the base 2007
    commands: 1C (direct close, a State Grid extension) is refused, 1B closes.
    ``reverse_energy_kwh`` is subtracted in the combined total (00000000), which is signed.
    """

    password: bytes = b"\x02\x00\x00\x00"
    operator: bytes | None = None
    close_direct: bool = True
    reverse_energy_kwh: Decimal = Decimal(0)
    meter_number: str | None = None  # 04000402; None: the address
    password_failures: int = 0  # wrong passwords seen (meters lock out after a few)
    refusals: int = 0  # commands refused for any reason
    time_sets: int = 0  # programmed time sets taken


_QUIRKS: weakref.WeakKeyDictionary[SimulatedMeter, Dlt645Quirks] = weakref.WeakKeyDictionary()


def quirks(meter: SimulatedMeter) -> Dlt645Quirks:
    """The meter's DL/T 645 quirks (created with the defaults on first use)."""
    found = _QUIRKS.get(meter)
    if found is None:
        # The shipped base profile's meter knows only the base 2007 commands.
        found = _QUIRKS[meter] = Dlt645Quirks(close_direct=meter.profile != "dlt645-2007-base")
    return found


@dataclass(frozen=True)
class Dlt645Frame:
    """One frame with its data already un-shifted (-0x33)."""

    address: str
    control: int
    data: bytes


def address_bytes(address: str) -> bytes:
    """Return the 6 address bytes of a 12-digit address, lowest byte first."""
    return bytes.fromhex(address)[::-1]


def encode_frame(address: str, control: int, data: bytes = b"") -> bytes:
    """Build a whole frame, preamble included."""
    body = (
        bytes([START])
        + address_bytes(address)
        + bytes([START, control, len(data)])
        + bytes((byte + 0x33) & 0xFF for byte in data)
    )
    return PREAMBLE + body + bytes([sum(body) & 0xFF, END])


def decode_frame(buffer: bytes | bytearray) -> tuple[int, Dlt645Frame | None]:
    """Find the frame at the start of ``buffer``: (bytes used, frame).

    (0, None): need more bytes. (n, None): n bytes that are not a valid frame, to drop.
    """
    start = 0
    while start < len(buffer) and buffer[start] == 0xFE:
        start += 1
    if len(buffer) - start < 10:
        return 0, None
    if buffer[start] != START or buffer[start + 7] != START:
        return start + 1, None
    length = buffer[start + 9]
    end = start + 10 + length + 2
    if len(buffer) < end:
        return 0, None
    body = bytes(buffer[start : end - 2])
    if buffer[end - 1] != END or sum(body) & 0xFF != buffer[end - 2]:
        return end, None
    address = body[1:7][::-1].hex().upper()
    data = bytes((byte - 0x33) & 0xFF for byte in body[10:])
    return end, Dlt645Frame(address, body[8], data)


def looks_like_frame(buffer: bytes | bytearray) -> bool:
    """Tell a DL/T 645 frame's start from a Modbus-RTU one (a 68 ... 68 header)."""
    start = 0
    while start < len(buffer) and buffer[start] == 0xFE:
        start += 1
    if start < len(buffer) and buffer[start] != START:
        return False
    return len(buffer) - start < 8 or buffer[start + 7] == START


def bcd(value: int, size: int) -> bytes:
    """Encode a non-negative integer as ``size`` BCD bytes, lowest first (wrapping)."""
    digits = f"{value % 10 ** (2 * size):0{2 * size}d}"
    return bytes.fromhex(digits)[::-1]


def from_bcd(raw: bytes) -> int:
    """Decode BCD bytes sent lowest first; ValueError on a nibble above 9."""
    text = raw[::-1].hex()
    if not text.isdigit():
        raise ValueError(f"not BCD: {raw.hex()}")
    return int(text)


def answer(meters: Mapping[str, SimulatedMeter], frame: Dlt645Frame) -> list[bytes]:
    """Return the reply frames of the meters that answer ``frame`` (none to a broadcast)."""
    if frame.control == BROADCAST_TIME:
        if frame.address == BROADCAST:
            for meter in meters.values():
                _broadcast_time(meter, frame.data)
        return []
    if frame.address == WILDCARD:
        # Only a lone meter may answer the wildcard; several would garble each other.
        targets = list(meters.values()) if len(meters) == 1 else []
    else:
        found = meters.get(frame.address)
        targets = [found] if found is not None else []
    return [_answer_one(meter, frame) for meter in targets]


def _answer_one(meter: SimulatedMeter, frame: Dlt645Frame) -> bytes:
    assert meter.address is not None
    reply = frame.control | REPLY
    if frame.control == READ and len(frame.data) >= 4:
        identifier = int.from_bytes(frame.data[:4], "little")
        value = read_identifier(meter, identifier)
        if value is None:
            return encode_frame(meter.address, reply | ERROR, bytes([ERR_NO_DATA]))
        return encode_frame(meter.address, reply, frame.data[:4] + value)
    if frame.control == READ_ADDRESS:
        return encode_frame(meter.address, reply, address_bytes(meter.address))
    if frame.control == REMOTE_CONTROL:
        error = _remote_control(meter, frame.data)
        if error:
            quirks(meter).refusals += 1
            return encode_frame(meter.address, reply | ERROR, bytes([error]))
        return encode_frame(meter.address, reply)
    if frame.control == WRITE:
        error = _write(meter, frame.data)
        if error:
            quirks(meter).refusals += 1
            return encode_frame(meter.address, reply | ERROR, bytes([error]))
        return encode_frame(meter.address, reply)
    return encode_frame(meter.address, reply | ERROR, bytes([ERR_OTHER]))


def read_identifier(meter: SimulatedMeter, identifier: int) -> bytes | None:
    """Return the data of one identifier as the meter sends it (before +0x33), or None."""
    sample = meter.sample()
    energy = _energy(meter, sample.energy_kwh, sample.energy_by_period)
    if identifier in energy:
        return energy[identifier]
    if identifier == METER_NUMBER:
        number = quirks(meter).meter_number or meter.address or ""
        return bytes.fromhex(number)[::-1]
    if identifier in (VOLTAGE_A, VOLTAGE_BLOCK):
        return bcd(round(sample.voltage_v * 10), 2)  # XXX.X V; single phase: A only
    if identifier in (CURRENT_A, CURRENT_BLOCK):
        return bcd(round(sample.current_a * 1000), 3)  # XXX.XXX A
    if identifier == POWER_TOTAL:
        return bcd(round(sample.power_kw * 10_000), 3)  # XX.XXXX kW
    if identifier == POWER_BLOCK:
        return bcd(round(sample.power_kw * 10_000), 3) * 2  # total, then phase A
    if identifier == DATE:
        clock = sample.clock
        week_day = (clock.weekday() + 1) % 7  # 0 = Sunday
        return bytes([_bcd2(week_day), _bcd2(clock.day), _bcd2(clock.month), _bcd2(clock.year)])
    if identifier == TIME:
        clock = sample.clock
        return bytes([_bcd2(clock.second), _bcd2(clock.minute), _bcd2(clock.hour)])
    if identifier == STATUS_3:
        word = (STATUS_RELAY_OPEN if sample.relay == "open" else 0) | (
            STATUS_HOLD_POWER if sample.hold_power else 0
        )
        return word.to_bytes(2, "little")
    if identifier == REMAINING_MONEY:
        return bcd(meter.stored.get(REMAINING_MONEY, 0), 4)
    if identifier == OVERDRAFT_MONEY:
        return bcd(meter.stored.get(OVERDRAFT_MONEY, 0), 4)
    if identifier == PURCHASE_COUNT:
        return bcd(meter.stored.get(PURCHASE_COUNT, 0), 2)
    return None


def signed_bcd(value: int, size: int) -> bytes:
    """Encode a signed integer as ``size`` BCD bytes, lowest first, the top bit the sign."""
    raw = bcd(abs(value), size)
    if value < 0:
        raw = raw[:-1] + bytes([raw[-1] | SIGN])
    return raw


def _energy(
    meter: SimulatedMeter, total_kwh: float, by_period: Mapping[Period, float]
) -> dict[int, bytes]:
    """Every energy identifier the meter answers: totals, rates 1-4 and their blocks.

    Forward active energy is what the meter measured (rates: sharp, peak, flat, valley).
    The combined total is forward minus reverse and signed (XXXXXX.XX, top bit the sign):
    -0.04 kWh is 04 00 00 80, never 800000.04.
    """
    reverse = quirks(meter).reverse_energy_kwh
    forward = [hundredths(total_kwh)] + [hundredths(by_period[p]) for p in PERIODS]
    combined = [forward[0] - int(reverse * 100), *forward[1:]]
    answers: dict[int, bytes] = {}
    for base, values in ((ENERGY_FORWARD, forward), (ENERGY_COMBINED, combined)):
        signed = base == ENERGY_COMBINED
        encoded = [signed_bcd(v, 4) if signed else bcd(v, 4) for v in values]
        for rate, value in enumerate(encoded):
            answers[base + RATE_STEP * rate] = value
        answers[base | BLOCK] = b"".join(encoded)
    return answers


def _bcd2(value: int) -> int:
    return (value // 10 % 10) << 4 | value % 10


def parse_moment(raw: bytes) -> datetime:
    """Decode ``ssmmhhDDMMYY`` (seconds first); ValueError if it is not a real instant."""
    second, minute, hour, day, month, year = (from_bcd(raw[i : i + 1]) for i in range(6))
    return datetime(2000 + year, month, day, hour, minute, second)


def moment_bytes(moment: datetime) -> bytes:
    """Encode ``ssmmhhDDMMYY`` (seconds first), as control expiry and broadcast time carry."""
    fields = (moment.second, moment.minute, moment.hour, moment.day, moment.month, moment.year)
    return bytes(_bcd2(field % 100) for field in fields)


def _remote_control(meter: SimulatedMeter, data: bytes) -> int:
    """Execute a 0x1C command; return 0 or the error byte."""
    # password (4), operator (4), N1 command, N2 reserved, N3-N8 expiry
    if len(data) != 16:
        return ERR_OTHER
    error = _check_password(meter, data[:4], data[4:8])
    if error:
        return error
    command = data[8]
    if command == CLOSE_DIRECT and not quirks(meter).close_direct:
        return ERR_OTHER  # a base 2007 meter knows no direct close
    try:
        expires = parse_moment(data[10:16])
    except ValueError:
        return ERR_OTHER
    if expires < meter.meter_time():
        return ERR_OTHER  # a stale command must not act
    if command == TRIP:
        if meter.hold_power:
            return ERR_OTHER
        meter.switch_relay("open")
    elif command in (CLOSE_ALLOWED, CLOSE_DIRECT):
        meter.switch_relay("closed")
    elif command in (HOLD_ON, HOLD_OFF):
        meter.hold_power = command == HOLD_ON
    elif command not in (ALARM_ON, ALARM_OFF):
        return ERR_OTHER
    return 0


def _check_password(meter: SimulatedMeter, password: bytes, operator: bytes) -> int:
    """0, or ERR_UNAUTHORISED for a wrong password or operator (counted toward lock-out)."""
    known = quirks(meter)
    if password != known.password or (known.operator is not None and operator != known.operator):
        known.password_failures += 1
        return ERR_UNAUTHORISED
    return 0


def _write(meter: SimulatedMeter, data: bytes) -> int:
    """A programmed write (0x14): DI, password, operator, value. Date and time only."""
    if len(data) < 12:
        return ERR_OTHER
    identifier = int.from_bytes(data[:4], "little")
    error = _check_password(meter, data[4:8], data[8:12])
    if error:
        return error
    value = data[12:]
    now = meter.meter_time()
    try:
        if identifier == DATE and len(value) == 4:
            day, month, year = (from_bcd(value[i : i + 1]) for i in (1, 2, 3))
            moment = now.replace(year=2000 + year, month=month, day=day)
        elif identifier == TIME and len(value) == 3:
            second, minute, hour = (from_bcd(value[i : i + 1]) for i in range(3))
            moment = now.replace(hour=hour, minute=minute, second=second)
        else:
            return ERR_UNAUTHORISED  # other parameters need the programming key
    except ValueError:
        return ERR_OTHER
    meter.set_meter_time(moment)
    quirks(meter).time_sets += 1
    return 0


def _broadcast_time(meter: SimulatedMeter, data: bytes) -> None:
    if len(data) != 6:
        return
    try:
        moment = parse_moment(data)
    except ValueError:
        return
    if abs(moment - meter.meter_time()) > BROADCAST_TIME_WINDOW:
        return  # too far off: only an authenticated set may move the clock this much
    meter.set_meter_time(moment)
