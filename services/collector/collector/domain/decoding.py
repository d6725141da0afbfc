"""Registers to values: pure decoding and the plausibility check a reading must pass."""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from prepaid_common.contracts import RelayState

from collector.domain.profiles import (
    Dlt645Profile,
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


def decode_reading(profile: MeterProfile, registers: Mapping[int, int]) -> DecodedReading:
    """Decode a poll's registers by the profile; raise ImplausibleValue for garbage."""

    order = profile.word_order

    def value(spec: RegisterSpec) -> Decimal:
        address = spec.address
        if spec.type in _ONE_WORD:
            return decode_value((registers[address],), spec, order)
        return decode_value((registers[address], registers[address + 1]), spec, order)

    def optional(quantity: str) -> Decimal | None:
        spec = profile.registers.get(quantity)  # type: ignore[call-overload]
        return None if spec is None else _quantized(value(spec))

    # Meters on instrument transformers count on the secondary side: scale by PT x CT.
    ratio = Decimal(1)
    if profile.pt_ratio is not None and profile.ct_ratio is not None:
        ratio = value(profile.pt_ratio) * value(profile.ct_ratio)
        if ratio <= 0:
            raise ImplausibleValue(f"PT x CT ratio is {ratio}")

    def energy(spec: RegisterSpec) -> Decimal:
        return _quantized(value(spec) * ratio)

    power = optional("power_kw")
    local_credit, purchase_count = (
        decode_local_credit(profile, registers) if profile.local_credit else (None, None)
    )
    reading = DecodedReading(
        energy_kwh=energy(profile.registers["energy_kwh"]),
        power_kw=None if power is None else _quantized(power * ratio),
        voltage_v=optional("voltage_v"),
        current_a=optional("current_a"),
        relay=_relay(profile, registers),
        tou_kwh={period: energy(spec) for period, spec in profile.tou.items()} or None,
        local_credit=local_credit,
        purchase_count=purchase_count,
    )
    check_plausible(reading, profile)
    return reading


def decode_local_credit(profile: MeterProfile, registers: Mapping[int, int]) -> tuple[Decimal, int]:
    """Return a local-prepaid meter's (credit in yuan, purchase count) from its registers."""
    if profile.local_credit is None:
        raise ValueError(f"profile {profile.name} keeps no local credit")

    def value(spec: RegisterSpec) -> Decimal:
        words = [registers[a] for a in range(spec.address, spec.address + spec.words)]
        return decode_value(words, spec, profile.word_order)

    credit = value(profile.local_credit.credit).quantize(FEN, rounding=ROUND_HALF_EVEN)
    return credit, int(value(profile.local_credit.count))


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


def _quantized(value: Decimal) -> Decimal:
    return value.quantize(THOUSANDTH, rounding=ROUND_HALF_EVEN)
