"""Registers to values: pure decoding and the plausibility check a reading must pass."""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from prepaid_common.contracts import RelayState

from collector.domain.profiles import (
    Dlt645Profile,
    LoadAlarm,
    MeterProfile,
    RegisterSpec,
    TouPeriod,
    WordOrder,
)

THOUSANDTH = Decimal("0.001")
FEN = Decimal("0.01")
_FORMATS = {"uint16": ">H", "int16": ">h", "uint32": ">I", "int32": ">i", "float32": ">f"}
_SIGN_BIT = {"int16": 0x8000, "int32": 0x8000_0000}
_ONE_WORD = frozenset(("uint16", "int16"))


class ImplausibleValue(ValueError):
    """A decoded value that cannot be physical: garbled on the line or a wrong profile."""


@dataclass(frozen=True)
class DecodedReading:
    """What one poll of a meter says, in units (kWh, kW, V, A)."""

    energy_kwh: Decimal
    power_kw: Decimal | None = None
    voltage_v: Decimal | None = None
    current_a: Decimal | None = None
    relay: RelayState | None = None
    tou_kwh: Mapping[TouPeriod, Decimal] | None = None
    # A local-prepaid meter's own credit (yuan) and purchase count.
    local_credit: Decimal | None = None
    purchase_count: int | None = None
    # The power limit the meter holds (kW; None: it has no limit register, or 0 = none set)
    # and the load alarm it raises ("overload", "malicious_load"; None: none standing).
    power_limit_kw: Decimal | None = None
    load_alarm: LoadAlarm | None = None


def decode_value(words: Sequence[int], spec: RegisterSpec, word_order: WordOrder) -> Decimal:
    """Turn one value's registers into a scaled Decimal (floats via their shortest text)."""
    if len(words) != spec.words:
        raise ValueError(f"{spec.type} needs {spec.words} registers, got {len(words)}")
    kind = spec.type
    if kind != "float32":
        # Integers by arithmetic: this runs for every value of every poll.
        if len(words) == 1:
            raw = words[0]
        else:
            high, low = (words[0], words[1]) if word_order == "big" else (words[1], words[0])
            raw = high << 16 | low
        sign = _SIGN_BIT.get(kind)
        if sign is not None and raw & sign:
            raw -= sign << 1
        return Decimal(raw) * spec.scale
    ordered = list(words) if word_order == "big" else list(reversed(words))
    raw = struct.unpack(_FORMATS[kind], struct.pack(f">{len(ordered)}H", *ordered))[0]
    if isinstance(raw, float):
        # str() gives the shortest text that round-trips the float, not its binary expansion.
        value = Decimal(str(raw))
        if not value.is_finite():
            raise ImplausibleValue(f"register {spec.address:#06x} holds {raw} (not a number)")
        return value * spec.scale
    return Decimal(raw) * spec.scale


def encode_value(value: Decimal, spec: RegisterSpec, word_order: WordOrder) -> list[int]:
    """Return the registers a meter would hold for ``value`` (the inverse of decode_value)."""
    scaled = value / spec.scale
    if spec.type == "float32":
        packed = struct.pack(">f", float(scaled))
    else:
        packed = struct.pack(_FORMATS[spec.type], int(scaled.to_integral_value()))
    words = list(struct.unpack(f">{spec.words}H", packed))
    return words if word_order == "big" else list(reversed(words))


ValueReader = Callable[[Mapping[int, int]], Decimal]


def value_reader(spec: RegisterSpec, word_order: WordOrder) -> ValueReader:
    """``decode_value`` for one register, worked out once: what every poll then runs.

    Integers are read straight from the register map (no tuple, no type dispatch per
    poll); a float32 goes through ``decode_value`` itself.
    """
    address, scale = spec.address, spec.scale
    if spec.type == "float32":
        span = range(address, address + spec.words)
        return lambda registers: decode_value([registers[a] for a in span], spec, word_order)
    sign = _SIGN_BIT.get(spec.type, 0)
    if spec.words == 1:
        if not sign:
            return lambda registers: Decimal(registers[address]) * scale

        def signed_word(registers: Mapping[int, int]) -> Decimal:
            raw = registers[address]
            return Decimal(raw - (sign << 1) if raw & sign else raw) * scale

        return signed_word
    high, low = (address, address + 1) if word_order == "big" else (address + 1, address)

    def two_words(registers: Mapping[int, int]) -> Decimal:
        raw = registers[high] << 16 | registers[low]
        if raw & sign:
            raw -= sign << 1
        return Decimal(raw) * scale

    return two_words


IntReader = Callable[[Mapping[int, int]], int]


def int_reader(spec: RegisterSpec, word_order: WordOrder) -> IntReader:
    """The signed or unsigned integer an integer register holds, before its scale."""
    if spec.type == "float32":
        raise ValueError("a float32 register holds no integer")
    address = spec.address
    sign = _SIGN_BIT.get(spec.type, 0)
    if spec.words == 1:
        if not sign:
            return lambda registers: registers[address]

        def signed_word(registers: Mapping[int, int]) -> int:
            raw = registers[address]
            return raw - (sign << 1) if raw & sign else raw

        return signed_word
    high, low = (address, address + 1) if word_order == "big" else (address + 1, address)
    if not sign:
        return lambda registers: registers[high] << 16 | registers[low]

    def signed_two_words(registers: Mapping[int, int]) -> int:
        raw = registers[high] << 16 | registers[low]
        return raw - (sign << 1) if raw & sign else raw

    return signed_two_words


def exact_reader(
    spec: RegisterSpec | None, word_order: WordOrder, places: int
) -> tuple[IntReader, int] | None:
    """How to read a register's value as a whole count of 10**-places, if it is one.

    An integer register scaled by a power of ten no finer than 10**-places holds
    ``raw * factor`` such units exactly, so the Decimal is built once, at the right
    exponent (``Decimal(raw * factor).scaleb(-places)``), with no multiply and no quantize:
    the same value, digits and exponent that scaling and quantizing give. None: not such a
    register (a float32, or another scale), read the general way.
    """
    if spec is None or spec.type == "float32":
        return None
    sign, digits, exponent = spec.scale.normalize().as_tuple()
    if sign or digits != (1,) or not isinstance(exponent, int) or exponent < -places:
        return None
    return int_reader(spec, word_order), 10 ** (exponent + places)


class _ExactReaders:
    """Every value of a reading as an exact reader (``exact_reader``): the fast decoding."""

    def __init__(self, profile: MeterProfile) -> None:
        order = profile.word_order
        self.ok = profile.pt_ratio is None or profile.ct_ratio is None
        registers = profile.registers

        def exact(spec: RegisterSpec | None, places: int = 3) -> tuple[IntReader, int] | None:
            found = exact_reader(spec, order, places)
            if spec is not None and found is None:
                self.ok = False
            return found

        energy = exact(registers["energy_kwh"])
        self.energy: tuple[IntReader, int] = energy or (lambda _registers: 0, 1)
        self.power = exact(registers.get("power_kw"))
        self.voltage = exact(registers.get("voltage_v"))
        self.current = exact(registers.get("current_a"))
        self.tou: list[tuple[TouPeriod, IntReader, int]] = []
        for period, spec in profile.tou.items():
            found = exact(spec)
            if found is not None:
                self.tou.append((period, *found))
        credit = profile.local_credit
        self.credit = None if credit is None else exact(credit.credit, 2)
        self.count = None if credit is None else exact(credit.count, 0)


class ReadingDecoder:
    """A Modbus profile's decoding, worked out once (``decode_reading`` keeps one per
    profile): registers in, a checked DecodedReading out."""

    def __init__(self, profile: MeterProfile) -> None:
        self.profile = profile
        order = profile.word_order

        def optional(quantity: str) -> ValueReader | None:
            spec = profile.registers.get(quantity)  # type: ignore[call-overload]
            return None if spec is None else value_reader(spec, order)

        self._energy = value_reader(profile.registers["energy_kwh"], order)
        self._power = optional("power_kw")
        self._voltage = optional("voltage_v")
        self._current = optional("current_a")
        self._tou = [(period, value_reader(spec, order)) for period, spec in profile.tou.items()]
        self._ratios = (
            None
            if profile.pt_ratio is None or profile.ct_ratio is None
            else (value_reader(profile.pt_ratio, order), value_reader(profile.ct_ratio, order))
        )
        self._local_credit = None if profile.local_credit is None else _credit_readers(profile)
        limit = profile.power_limit
        self._power_limit = None if limit is None else value_reader(limit.limit, order)
        self._load_alarms = None if limit is None else limit.alarms
        exact = _ExactReaders(profile)
        self._exact = exact if exact.ok else None

    def __call__(self, registers: Mapping[int, int]) -> DecodedReading:
        """Decode a poll's registers; raise ImplausibleValue for garbage."""
        if self._exact is not None:
            return self._decode_exact(self._exact, registers)
        return self._decode(registers)

    def _decode_exact(self, exact: _ExactReaders, registers: Mapping[int, int]) -> DecodedReading:
        """``_decode`` for a profile whose every value is an exact reader: what a reference
        meter's poll runs (the same reading, built with a third of the decimal work)."""
        read, factor = exact.energy
        power = voltage = current = local_credit = None
        purchase_count = None
        if exact.power is not None:
            read_power, power_factor = exact.power
            power = Decimal(read_power(registers) * power_factor).scaleb(-3)
        if exact.voltage is not None:
            read_voltage, voltage_factor = exact.voltage
            voltage = Decimal(read_voltage(registers) * voltage_factor).scaleb(-3)
        if exact.current is not None:
            read_current, current_factor = exact.current
            current = Decimal(read_current(registers) * current_factor).scaleb(-3)
        if exact.credit is not None and exact.count is not None:
            read_credit, credit_factor = exact.credit
            read_count, count_factor = exact.count
            local_credit = Decimal(read_credit(registers) * credit_factor).scaleb(-2)
            purchase_count = read_count(registers) * count_factor
        reading = DecodedReading(
            energy_kwh=Decimal(read(registers) * factor).scaleb(-3),
            power_kw=power,
            voltage_v=voltage,
            current_a=current,
            relay=_relay(self.profile, registers),
            tou_kwh={
                period: Decimal(read_tou(registers) * tou_factor).scaleb(-3)
                for period, read_tou, tou_factor in exact.tou
            }
            or None,
            local_credit=local_credit,
            purchase_count=purchase_count,
            power_limit_kw=self._limit(registers),
            load_alarm=self._load_alarm(registers),
        )
        check_plausible(reading, self.profile)
        return reading

    def _decode(self, registers: Mapping[int, int]) -> DecodedReading:
        """Decode any profile's registers (ratios, float32 values, other scales)."""
        # Meters on instrument transformers count on the secondary side: scale by PT x CT.
        ratio = None
        if self._ratios is not None:
            ratio = self._ratios[0](registers) * self._ratios[1](registers)
            if ratio <= 0:
                raise ImplausibleValue(f"PT x CT ratio is {ratio}")

        def energy(read: ValueReader) -> Decimal:
            value = read(registers)
            return _quantized(value if ratio is None else value * ratio)

        def optional(read: ValueReader | None) -> Decimal | None:
            return None if read is None else _quantized(read(registers))

        power = optional(self._power)
        local_credit, purchase_count = (
            (None, None)
            if self._local_credit is None
            else _credit_and_count(self._local_credit, registers)
        )
        reading = DecodedReading(
            energy_kwh=energy(self._energy),
            power_kw=power if power is None or ratio is None else _quantized(power * ratio),
            voltage_v=optional(self._voltage),
            current_a=optional(self._current),
            relay=_relay(self.profile, registers),
            tou_kwh={period: energy(read) for period, read in self._tou} or None,
            local_credit=local_credit,
            purchase_count=purchase_count,
            power_limit_kw=self._limit(registers),
            load_alarm=self._load_alarm(registers),
        )
        check_plausible(reading, self.profile)
        return reading

    def _limit(self, registers: Mapping[int, int]) -> Decimal | None:
        if self._power_limit is None:
            return None
        kw = self._power_limit(registers)
        return kw if kw > 0 else None

    def _load_alarm(self, registers: Mapping[int, int]) -> LoadAlarm | None:
        alarms = self._load_alarms
        if alarms is None:
            return None
        word = registers[alarms.state]
        # A malicious load is the more specific finding: named first when both stand.
        if alarms.malicious_bit is not None and word >> alarms.malicious_bit & 1:
            return "malicious_load"
        if word >> alarms.overload_bit & 1:
            return "overload"
        return None


# Decoders by profile object (kept alive with it, so an id is never reused for another).
_decoders: dict[int, ReadingDecoder] = {}


def decode_reading(profile: MeterProfile, registers: Mapping[int, int]) -> DecodedReading:
    """Decode a poll's registers by the profile; raise ImplausibleValue for garbage."""
    decoder = _decoders.get(id(profile))
    if decoder is None or decoder.profile is not profile:
        decoder = _decoders[id(profile)] = ReadingDecoder(profile)
    return decoder(registers)


def decode_local_credit(profile: MeterProfile, registers: Mapping[int, int]) -> tuple[Decimal, int]:
    """Return a local-prepaid meter's (credit in yuan, purchase count) from its registers."""
    if profile.local_credit is None:
        raise ValueError(f"profile {profile.name} keeps no local credit")
    return _credit_and_count(_credit_readers(profile), registers)


def _credit_readers(profile: MeterProfile) -> tuple[ValueReader, ValueReader]:
    assert profile.local_credit is not None
    spec, order = profile.local_credit, profile.word_order
    return value_reader(spec.credit, order), value_reader(spec.count, order)


def _credit_and_count(
    readers: tuple[ValueReader, ValueReader], registers: Mapping[int, int]
) -> tuple[Decimal, int]:
    credit, count = readers
    return _quantized(credit(registers), FEN), int(count(registers))


def check_plausible(reading: DecodedReading, profile: MeterProfile | Dlt645Profile) -> None:
    """Refuse values no meter of this model could hold."""
    energies = [("energy", reading.energy_kwh), *(reading.tou_kwh or {}).items()]
    for label, kwh in energies:
        if kwh < 0:
            raise ImplausibleValue(f"{label} {kwh} kWh is negative")
        if kwh > profile.max_energy_kwh:
            raise ImplausibleValue(
                f"{label} {kwh} kWh is beyond the register's {profile.max_energy_kwh} kWh"
            )
    if reading.power_kw is not None and abs(reading.power_kw) > profile.max_power_kw:
        raise ImplausibleValue(
            f"power {reading.power_kw} kW is beyond the model's {profile.max_power_kw} kW"
        )
    if reading.voltage_v is not None and not 0 <= reading.voltage_v <= 1000:
        raise ImplausibleValue(f"voltage {reading.voltage_v} V is not a mains voltage")
    if reading.current_a is not None and reading.current_a < 0:
        raise ImplausibleValue(f"current {reading.current_a} A is negative")


def _relay(profile: MeterProfile, registers: Mapping[int, int]) -> RelayState | None:
    if profile.relay is None:
        return None
    return decode_relay(profile, registers[profile.relay.state.address])


def decode_relay(profile: MeterProfile, word: int) -> RelayState:
    """Map the relay state register's value to open/closed; anything else is garbage."""
    if profile.relay is None:
        raise ValueError(f"profile {profile.name} has no relay")
    if word == profile.relay.state.open:
        return "open"
    if word == profile.relay.state.closed:
        return "closed"
    raise ImplausibleValue(f"relay state register holds {word}, neither open nor closed")


def _quantized(value: Decimal, quantum: Decimal = THOUSANDTH) -> Decimal:
    try:
        return value.quantize(quantum, rounding=ROUND_HALF_EVEN)
    except InvalidOperation:
        # A float32 can hold 1e25: more digits than the context keeps to the thousandth.
        raise ImplausibleValue(f"{value} is beyond any meter's range") from None
