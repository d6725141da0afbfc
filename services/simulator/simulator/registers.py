"""Register maps of the simulated meter models, each named after the collector's profile file.

Addresses are 0-based protocol addresses; multi-word values are big-endian, high word first.
Every map answers function codes 03 and 04 from the same block. DL/T 645 meters have no
register map: they answer data identifiers (simulator.dlt645).
"""

from __future__ import annotations

import math
import struct
from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import ClassVar

from prepaid_common.sealing import METER_RESULT_CODES, Command

from simulator.loadcurve import Period
from simulator.meter import MeterSample, PurchaseRefused, SimulatedMeter
from simulator.secure import SecureElement

ILLEGAL_FUNCTION = 0x01
ILLEGAL_DATA_ADDRESS = 0x02
ILLEGAL_DATA_VALUE = 0x03
SERVER_DEVICE_FAILURE = 0x04

UINT32_MAX = 0xFFFFFFFF


class ModbusError(Exception):
    """A request the meter answers with a Modbus exception code."""

    def __init__(self, code: int) -> None:
        super().__init__(f"modbus exception {code:#04x}")
        self.code = code


def uint32_words(value: int) -> tuple[int, int]:
    """Split an unsigned 32-bit value into (high word, low word)."""
    value = max(0, min(UINT32_MAX, value))
    return value >> 16, value & 0xFFFF


def int32_words(value: int) -> tuple[int, int]:
    """Split a signed 32-bit value (two's complement) into (high word, low word)."""
    value = max(-(2**31), min(2**31 - 1, value))
    return uint32_words(value & UINT32_MAX)


def int16_word(value: int) -> int:
    """Encode a signed 16-bit value (two's complement), saturating at the limits."""
    return max(-32768, min(32767, value)) & 0xFFFF


def uint16_word(value: int) -> int:
    """Encode an unsigned 16-bit value, saturating at the limits."""
    return max(0, min(0xFFFF, value))


def float32_words(value: float) -> tuple[int, int]:
    """Encode an IEEE-754 single as (high word, low word)."""
    high, low = struct.unpack(">HH", struct.pack(">f", value))
    return high, low


def hundredths(value: float) -> int:
    """Return a register count of 0.01 units, truncated as a meter's display is."""
    return math.floor(value * 100 + 1e-9)


class RegisterMap(ABC):
    """How one meter model shows its state in registers, and which registers it accepts."""

    name: ClassVar[str]
    has_relay: ClassVar[bool] = False
    writable: ClassVar[frozenset[int]] = frozenset()

    @abstractmethod
    def snapshot(self, meter: SimulatedMeter) -> dict[int, int]:
        """Return every defined register's current word."""

    def read(self, meter: SimulatedMeter, address: int, count: int) -> list[int]:
        """Return ``count`` words from ``address``; exception 02 if any is undefined."""
        registers = self.snapshot(meter)
        try:
            return [registers[a] for a in range(address, address + count)]
        except KeyError:
            raise ModbusError(ILLEGAL_DATA_ADDRESS) from None

    def write(self, meter: SimulatedMeter, address: int, values: Sequence[int]) -> None:
        """Write words from ``address`` all or nothing; exception 02 if one is not writable."""
        addresses = range(address, address + len(values))
        if any(a not in self.writable for a in addresses):
            raise ModbusError(ILLEGAL_DATA_ADDRESS)
        self.apply(meter, dict(zip(addresses, values, strict=True)))

    def apply(self, meter: SimulatedMeter, words: dict[int, int]) -> None:
        """Store written words (models with commands override this)."""
        meter.stored.update(words)


class ReferencePrepaidMap(RegisterMap):
    """The project's documented reference prepaid profile (see reference-prepaid.toml)."""

    name = "reference-prepaid"
    has_relay = True
    ENERGY_TOTAL = 0x0000
    ENERGY_BY_PERIOD: ClassVar[dict[Period, int]] = {
        "sharp": 0x0002,
        "peak": 0x0004,
        "flat": 0x0006,
        "valley": 0x0008,
    }
    VOLTAGE = 0x000A
    CURRENT = 0x000B
    POWER = 0x000C
    RELAY_STATE = 0x0010
    RELAY_COMMAND = 0x0011
    CREDIT = 0x0012
    PURCHASE_COUNT = 0x0014
    STATUS = 0x0015
    CLOCK = 0x0020  # year, month, day, hour, minute, second
    SERIAL = 0x0050  # UINT32 serial number, read-only
    # A purchase: INT32 amount x0.01 yuan, then UINT16 count, in one FC16 write.
    PURCHASE = 0x0030
    PURCHASE_WORDS = 3
    # The credit alarm levels: two INT32 x0.01 yuan (first, then second), one FC16 write.
    ALARMS = 0x0034
    ALARM_WORDS = 4
    # The power limit: UINT32 x0.01 kW (0: no limit), FC16, where two reserved registers
    # were (inside the block every poll reads); status bits 2 and 3 are the overload and
    # malicious-load alarms.
    POWER_LIMIT = 0x000E
    POWER_LIMIT_WORDS = 2
    OVERLOAD_BIT = 2
    MALICIOUS_LOAD_BIT = 3
    TRIP = 0x001A
    CLOSE = 0x001B
    # Written to the relay command register: hold-power (保电) on and off.
    HOLD_ON = 0x003A
    HOLD_OFF = 0x003B
    RELAY_CLOSED = 0
    RELAY_OPEN = 1
    writable = frozenset(
        {
            RELAY_COMMAND,
            *range(CLOCK, CLOCK + 6),
            *range(PURCHASE, PURCHASE + PURCHASE_WORDS),
            *range(ALARMS, ALARMS + ALARM_WORDS),
            *range(POWER_LIMIT, POWER_LIMIT + POWER_LIMIT_WORDS),
        }
    )

    def snapshot(self, meter: SimulatedMeter) -> dict[int, int]:
        sample = meter.sample()
        words: list[tuple[int, int]] = []
        words += _pair(self.ENERGY_TOTAL, uint32_words(hundredths(sample.energy_kwh)))
        for period, address in self.ENERGY_BY_PERIOD.items():
            words += _pair(address, uint32_words(hundredths(sample.energy_by_period[period])))
        words += [
            (self.VOLTAGE, uint16_word(round(sample.voltage_v * 10))),
            (self.CURRENT, uint16_word(round(sample.current_a * 100))),
        ]
        words += _pair(self.POWER, int32_words(round(sample.power_kw * 1000)))
        words += [
            (self.RELAY_STATE, self.RELAY_OPEN if sample.relay == "open" else self.RELAY_CLOSED),
            (self.RELAY_COMMAND, 0),
        ]
        # The display truncates toward minus infinity, as for energy.
        words += _pair(self.CREDIT, int32_words(math.floor(meter.local_credit * 100)))
        words += [
            (self.PURCHASE_COUNT, uint16_word(meter.purchase_count)),
            (self.STATUS, _status_word(sample) | self._load_alarms(meter)),
        ]
        words += list(enumerate(_clock_words(sample.clock), start=self.CLOCK))
        words += [(self.PURCHASE + offset, 0) for offset in range(self.PURCHASE_WORDS)]
        first, second = meter.alarm_thresholds
        words += _pair(self.ALARMS, int32_words(math.floor(first * 100)))
        words += _pair(self.ALARMS + 2, int32_words(math.floor(second * 100)))
        limit = meter.power_limit_kw or Decimal(0)
        words += _pair(self.POWER_LIMIT, uint32_words(int(limit * 100)))
        words += _pair(self.SERIAL, uint32_words(meter.serial))
        return dict(words)

    def _load_alarms(self, meter: SimulatedMeter) -> int:
        return (meter.overload << self.OVERLOAD_BIT) | (
            meter.malicious_load << self.MALICIOUS_LOAD_BIT
        )

    def apply(self, meter: SimulatedMeter, words: dict[int, int]) -> None:
        # Check everything first: a rejected request changes nothing.
        if any(self.PURCHASE <= a < self.PURCHASE + self.PURCHASE_WORDS for a in words):
            self._purchase(meter, words)
            return
        if any(self.ALARMS <= a < self.ALARMS + self.ALARM_WORDS for a in words):
            self._alarms(meter, words)
            return
        if any(self.POWER_LIMIT <= a < self.POWER_LIMIT + self.POWER_LIMIT_WORDS for a in words):
            self._power_limit(meter, words)
            return
        command = words.pop(self.RELAY_COMMAND, None)
        if command in (self.HOLD_ON, self.HOLD_OFF):
            meter.hold_power = command == self.HOLD_ON
            command = None
        elif command is not None and command not in (self.TRIP, self.CLOSE):
            raise ModbusError(ILLEGAL_DATA_VALUE)
        if command == self.TRIP and meter.hold_power:
            raise ModbusError(SERVER_DEVICE_FAILURE)
        new_clock = None
        clock_addresses = range(self.CLOCK, self.CLOCK + 6)
        if any(a in words for a in clock_addresses):
            fields = list(_clock_words(meter.meter_time()))
            for index, address in enumerate(clock_addresses):
                fields[index] = words.pop(address, fields[index])
            try:
                year, month, day, hour, minute, second = fields
                # A meter keeps local time, without a zone.
                new_clock = datetime(year, month, day, hour, minute, second)
            except ValueError:
                raise ModbusError(ILLEGAL_DATA_VALUE) from None
        meter.stored.update(words)
        if new_clock is not None:
            meter.set_meter_time(new_clock)
        if command is not None:
            meter.switch_relay("open" if command == self.TRIP else "closed")

    def _purchase(self, meter: SimulatedMeter, words: dict[int, int]) -> None:
        """Take a purchase written as one block: the next count adds, the same one is a retry."""
        block = range(self.PURCHASE, self.PURCHASE + self.PURCHASE_WORDS)
        if set(words) != set(block):
            raise ModbusError(ILLEGAL_DATA_VALUE)  # a purchase is written whole, alone
        high, low, count = (words[address] for address in block)
        fen = ((high << 16) | low) - (1 << 32 if high & 0x8000 else 0)
        try:
            meter.take_purchase(Decimal(fen).scaleb(-2), count)
        except PurchaseRefused:
            raise ModbusError(ILLEGAL_DATA_VALUE) from None

    def _alarms(self, meter: SimulatedMeter, words: dict[int, int]) -> None:
        """Take both alarm levels written as one block; the first may not be below the second."""
        block = range(self.ALARMS, self.ALARMS + self.ALARM_WORDS)
        if set(words) != set(block):
            raise ModbusError(ILLEGAL_DATA_VALUE)
        values = [words[a] for a in block]
        first, second = (Decimal(_signed32(values[i], values[i + 1])).scaleb(-2) for i in (0, 2))
        if second < 0 or first < second:
            raise ModbusError(ILLEGAL_DATA_VALUE)
        meter.alarm_thresholds = (first, second)

    def _power_limit(self, meter: SimulatedMeter, words: dict[int, int]) -> None:
        """Take the power limit written as one block (0 lifts it)."""
        block = range(self.POWER_LIMIT, self.POWER_LIMIT + self.POWER_LIMIT_WORDS)
        if set(words) != set(block):
            raise ModbusError(ILLEGAL_DATA_VALUE)
        high, low = (words[a] for a in block)
        hundredths = (high << 16) | low
        meter.power_limit_kw = Decimal(hundredths).scaleb(-2) if hundredths else None


class SecurePrepaidMap(ReferencePrepaidMap):
    """A secure prepaid meter (see secure-prepaid.toml): the reference map's readings, but
    every command arrives as a sealed envelope that the meter verifies itself.

    Nothing is writable but the envelope block; the relay, clock, hold-power, purchases and
    alarm levels change only by an envelope that verifies. The result register tells the
    last envelope's fate and the counter register the last counter the meter took.
    """

    name = "secure-prepaid"
    RESULT = 0x0040  # UINT16 result code (prepaid_common.sealing.METER_RESULT_CODES)
    LAST_COUNTER = 0x0041  # UINT32
    ENVELOPE = 0x0100  # UINT16 byte count, then the envelope two bytes a word
    ENVELOPE_WORDS = 123
    writable = frozenset(range(ENVELOPE, ENVELOPE + ENVELOPE_WORDS))

    def snapshot(self, meter: SimulatedMeter) -> dict[int, int]:
        words = super().snapshot(meter)
        element = meter.secure
        result = "none" if element is None else element.result
        counter = 0 if element is None else element.last_counter
        words[self.RESULT] = METER_RESULT_CODES[result]
        words.update(_pair(self.LAST_COUNTER, uint32_words(counter)))
        words.update(dict.fromkeys(range(self.ENVELOPE, self.ENVELOPE + self.ENVELOPE_WORDS), 0))
        return words

    def apply(self, meter: SimulatedMeter, words: dict[int, int]) -> None:
        if min(words) != self.ENVELOPE:
            raise ModbusError(ILLEGAL_DATA_ADDRESS)  # an envelope is written from its start
        element = meter.secure
        if element is None:
            raise ModbusError(SERVER_DEVICE_FAILURE)  # a meter never personalised with keys
        command = element.receive([words[a] for a in sorted(words)])
        if command is not None:
            _carry_out(meter, element, command)


def _carry_out(meter: SimulatedMeter, element: SecureElement, command: Command) -> None:
    """Do what a verified envelope says, or note in the result register why not."""
    payload = command.payload
    try:
        if command.kind in ("trip", "close"):
            if command.kind == "trip" and meter.hold_power:
                element.refuse("not_executed", "hold-power is on: trips are refused")
                return
            meter.switch_relay("open" if command.kind == "trip" else "closed")
        elif command.kind in ("hold_on", "hold_off"):
            meter.hold_power = command.kind == "hold_on"
        elif command.kind == "time_set":
            # The sealed time is UTC; the meter shows local time, as the simulated clock does.
            moment = datetime.fromisoformat(str(payload["time"]))
            meter.set_meter_time(moment.astimezone().replace(tzinfo=None))
        elif command.kind == "credit":
            meter.take_purchase(Decimal(str(payload["amount"])), int(payload["purchase_count"]))
        elif command.kind == "alarm_thresholds":
            first, second = Decimal(str(payload["first"])), Decimal(str(payload["second"]))
            if not first.is_finite() or second < 0 or first < second:
                element.refuse("not_executed", f"alarm levels {first}, {second}")
                return
            meter.alarm_thresholds = (first, second)
        elif command.kind == "power_limit":
            kw = Decimal(str(payload["kw"]))
            # Its register holds hundredths of a kW: a finer limit is not one it can keep.
            if not kw.is_finite() or kw <= 0 or kw != kw.quantize(Decimal("0.01")):
                element.refuse("not_executed", f"power limit {kw} kW")
                return
            meter.power_limit_kw = kw
    except PurchaseRefused as refused:
        element.refuse("purchase_refused", str(refused))
    except (KeyError, ValueError, TypeError, ArithmeticError) as error:
        element.refuse("not_executed", f"{command.kind}: unreadable payload ({error})")


def _signed32(high: int, low: int) -> int:
    value = (high << 16) | low
    return value - (1 << 32) if high & 0x8000 else value


class AcrelDdsy1352Map(RegisterMap):
    """Acrel DDSY1352 single-phase prepaid meter: public registers only, so no relay."""

    name = "acrel-ddsy1352"
    ENERGY_BY_PERIOD: ClassVar[dict[int, Period]] = {
        0x0002: "sharp",
        0x0004: "peak",
        0x0006: "flat",
        0x0008: "valley",
    }
    CODE = 0x000A
    writable = frozenset({CODE})

    def snapshot(self, meter: SimulatedMeter) -> dict[int, int]:
        sample = meter.sample()
        words: list[tuple[int, int]] = []
        words += _pair(0x0000, uint32_words(hundredths(sample.energy_kwh)))
        for address, period in self.ENERGY_BY_PERIOD.items():
            words += _pair(address, uint32_words(hundredths(sample.energy_by_period[period])))
        apparent_kva = sample.power_kw / sample.power_factor
        words += [
            (self.CODE, meter.stored.get(self.CODE, 0)),
            (0x000B, uint16_word(round(sample.voltage_v * 10))),
            (0x000C, uint16_word(round(sample.current_a * 100))),
            (0x000D, int16_word(round(sample.power_kw * 1000))),
            # Not documented; the simulator answers 0 so a block read across it works.
            (0x000E, 0),
            (0x000F, uint16_word(round(apparent_kva * 1000))),
            (0x0010, int16_word(round(sample.power_factor * 1000))),
        ]
        return dict(words)

    def apply(self, meter: SimulatedMeter, words: dict[int, int]) -> None:
        if words.get(self.CODE, 0) > 9999:
            raise ModbusError(ILLEGAL_DATA_VALUE)
        meter.stored.update(words)


# Eastron SDM120/SDM630: the serial number, a UINT32 holding register (read with FC03).
EASTRON_SERIAL = 0xFC00


class EastronSdm120Map(RegisterMap):
    """Eastron SDM120: IEEE-754 floats, big-endian, in input registers; no relay."""

    name = "eastron-sdm120"

    def snapshot(self, meter: SimulatedMeter) -> dict[int, int]:
        sample = meter.sample()
        power_w = sample.power_kw * 1000
        apparent_va = power_w / sample.power_factor
        reactive_var = math.sqrt(max(0.0, apparent_va**2 - power_w**2))
        values = {
            0x0000: sample.voltage_v,
            0x0006: sample.current_a,
            0x000C: power_w,
            0x0012: apparent_va,
            0x0018: reactive_var,
            0x001E: sample.power_factor,
            0x0046: 50.0,
            0x0048: sample.energy_kwh,
            0x004A: 0.0,
            0x0156: sample.energy_kwh,
        }
        words: list[tuple[int, int]] = []
        for address, value in values.items():
            words += _pair(address, float32_words(value))
        words += _pair(EASTRON_SERIAL, uint32_words(meter.serial))
        return dict(words)


def _float_words(values: dict[int, float]) -> dict[int, int]:
    words: list[tuple[int, int]] = []
    for address, value in values.items():
        words += _pair(address, float32_words(value))
    return dict(words)


def _phase_current_a(sample: MeterSample, phases: int) -> float:
    return sample.power_kw * 1000 / phases / (sample.voltage_v * sample.power_factor)


class EastronSdm630Map(RegisterMap):
    """Eastron SDM630 three-phase: FLOAT32 input registers; the load is spread over L1-L3."""

    name = "eastron-sdm630"

    def snapshot(self, meter: SimulatedMeter) -> dict[int, int]:
        sample = meter.sample()
        power_w = sample.power_kw * 1000
        current = _phase_current_a(sample, 3)
        values = {
            **dict.fromkeys((0x0000, 0x0002, 0x0004), sample.voltage_v),
            **dict.fromkeys((0x0006, 0x0008, 0x000A), current),
            **dict.fromkeys((0x000C, 0x000E, 0x0010), power_w / 3),
            0x0034: power_w,
            0x0046: 50.0,
            0x0048: sample.energy_kwh,
            0x004A: 0.0,
            0x0156: sample.energy_kwh,
        }
        return _float_words(values) | dict(_pair(EASTRON_SERIAL, uint32_words(meter.serial)))


class ChintDdsu666Map(RegisterMap):
    """Chint DDSU666 single-phase: FLOAT32 input registers in plain units (kW, kWh)."""

    name = "chint-ddsu666"

    def snapshot(self, meter: SimulatedMeter) -> dict[int, int]:
        sample = meter.sample()
        apparent = sample.power_kw / sample.power_factor
        values = {
            0x2000: sample.voltage_v,
            0x2002: sample.current_a,
            0x2004: sample.power_kw,
            0x2006: math.sqrt(max(0.0, apparent**2 - sample.power_kw**2)),
            0x200A: sample.power_factor,
            0x200E: 50.0,
            0x4000: sample.energy_kwh,
            0x400A: 0.0,
        }
        return _float_words(values)


class ChintDtsu666Map(RegisterMap):
    """Chint DTSU666 three-phase: FLOAT32 holding registers in scaled units (0.1 V, mA, 0.1 W).

    The sources disagree on the energy registers (0x101E/0x1028 or 0x401E/0x4028): the
    simulated meter answers both, so either profile reading works against it.
    """

    name = "chint-dtsu666"

    def snapshot(self, meter: SimulatedMeter) -> dict[int, int]:
        sample = meter.sample()
        current_ma = _phase_current_a(sample, 3) * 1000
        values = {
            **dict.fromkeys((0x2006, 0x2008, 0x200A), sample.voltage_v * 10),
            **dict.fromkeys((0x200C, 0x200E, 0x2010), current_ma),
            0x2012: sample.power_kw * 10_000,
            0x202A: sample.power_factor * 1000,
            0x2044: 5000.0,
            0x101E: sample.energy_kwh,
            0x1028: 0.0,
            0x401E: sample.energy_kwh,
            0x4028: 0.0,
        }
        return _float_words(values)


class AcrelAdl400Map(RegisterMap):
    """Acrel ADL400 three-phase on the secondary side: kWh = raw x 0.01 x PT x CT.

    The simulated meter is wired without transformers (PT = CT = 1) so the register shows
    the meter's energy to the hundredth; the ratio registers are there to be read.
    """

    name = "acrel-adl400"
    PT_RATIO = 1
    CT_RATIO = 1

    def snapshot(self, meter: SimulatedMeter) -> dict[int, int]:
        sample = meter.sample()
        energy = uint32_words(hundredths(sample.energy_kwh / (self.PT_RATIO * self.CT_RATIO)))
        voltage = uint16_word(round(sample.voltage_v * 10))
        current = uint16_word(round(_phase_current_a(sample, 3) * 100))
        words: list[tuple[int, int]] = []
        words += _pair(0x0000, energy)
        words += _pair(0x000A, energy)  # forward = total: the simulated load never exports
        words += _pair(0x0014, (0, 0))
        words += [(address, voltage) for address in (0x0061, 0x0062, 0x0063)]
        words += [(address, current) for address in (0x0064, 0x0065, 0x0066)]
        words += [(0x0077, 5000), (0x008D, self.PT_RATIO), (0x008E, self.CT_RATIO)]
        return dict(words)


def _pair(address: int, words: tuple[int, int]) -> list[tuple[int, int]]:
    return [(address, words[0]), (address + 1, words[1])]


def _status_word(sample: MeterSample) -> int:
    return (1 if sample.relay == "open" else 0) | (2 if sample.hold_power else 0)


def _clock_words(moment: datetime) -> tuple[int, int, int, int, int, int]:
    return (moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second)


REGISTER_MAPS: dict[str, RegisterMap] = {
    register_map.name: register_map
    for register_map in (
        ReferencePrepaidMap(),
        SecurePrepaidMap(),
        AcrelDdsy1352Map(),
        EastronSdm120Map(),
        EastronSdm630Map(),
        ChintDdsu666Map(),
        ChintDtsu666Map(),
        AcrelAdl400Map(),
    )
}
MODBUS_PROFILE_NAMES: tuple[str, ...] = tuple(REGISTER_MAPS)
# Meters that verify sealed commands themselves (simulator.secure).
SECURE_PROFILE_NAMES: tuple[str, ...] = (SecurePrepaidMap.name,)
# Meters speaking DL/T 645-2007 instead of Modbus (see simulator.dlt645).
DLT645_PROFILE_NAMES: tuple[str, ...] = ("dlt645-2007", "dlt645-2007-base")
PROFILE_NAMES: tuple[str, ...] = MODBUS_PROFILE_NAMES + DLT645_PROFILE_NAMES
