"""Commands that go to a meter's registers beyond the relay and purchases: sealed envelopes
for meters that verify them themselves, hold-power, alarm levels, the power limit and the
clock.

A secure meter (a profile with ``[secure]``) is the point of execution: the collector holds
no key for it, writes the envelope control sealed unchanged, and reads back what the meter
made of it. Its refusals are security events like the collector's own.
"""

from __future__ import annotations

import base64
import binascii
import struct
from dataclasses import dataclass
from datetime import datetime, tzinfo
from decimal import Decimal

from prepaid_common.sealing import (
    METER_RESULTS_BY_CODE,
    MeterResult,
    envelope_words,
)

from collector.domain.commands import AlarmLevels, RefusedCommand
from collector.domain.decoding import ImplausibleValue, decode_value, encode_value
from collector.domain.profiles import HoldPowerSpec, MeterProfile, SecureSpec

# Offsets in a sealed envelope: version, algorithm, key version (2), counter (4).
_COUNTER = struct.Struct(">I")
_COUNTER_AT = 4
# The meter's refusals that are security events, as the collector's refusal kinds.
SECURITY_RESULTS: frozenset[MeterResult] = frozenset(
    {"forged", "replayed", "expired", "wrong_meter", "malformed", "unknown_key"}
)


@dataclass(frozen=True)
class SealedWrite:
    """The register words that carry an envelope, and the counter its header names."""

    words: list[int]
    counter: int


def sealed_write(envelope: str, spec: SecureSpec) -> SealedWrite:
    """Return the FC16 words of an envelope for a secure meter; RefusedCommand (malformed)
    when it is not a sealed envelope or does not fit the meter's block.

    Nothing is verified here: the meter does that, with keys the collector does not hold.
    """
    try:
        raw = base64.b64decode(envelope.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise RefusedCommand("refused: not a sealed envelope", "malformed") from None
    if not 1 <= len(raw) <= spec.max_bytes or len(raw) < _COUNTER_AT + _COUNTER.size:
        raise RefusedCommand(
            f"refused: an envelope of {len(raw)} bytes does not fit the meter's "
            f"{spec.max_bytes}-byte block",
            "malformed",
        )
    (counter,) = _COUNTER.unpack_from(raw, _COUNTER_AT)
    return SealedWrite(envelope_words(raw), counter)


@dataclass(frozen=True)
class MeterVerdict:
    """What a secure meter says it did with the last envelope, and its last counter."""

    result: MeterResult
    last_counter: int


def read_verdict(words: list[int], *, sent_counter: int) -> MeterVerdict:
    """Decode the result block (result, counter high, counter low) after a write.

    ImplausibleValue for a code no meter uses, or an acceptance of another counter than the
    one sent (the write did not reach the meter as sent).
    """
    if len(words) != 3:
        raise ImplausibleValue(f"result block of {len(words)} words")
    result = METER_RESULTS_BY_CODE.get(words[0])
    if result is None or result == "none":
        raise ImplausibleValue(f"result register holds {words[0]}: no verdict")
    counter = (words[1] << 16) | words[2]
    if result == "accepted" and counter != sent_counter:
        raise ImplausibleValue(f"meter took counter {counter}, not the {sent_counter} sent")
    return MeterVerdict(result, counter)


def hold_power_value(spec: HoldPowerSpec, on: bool) -> tuple[int, int]:
    """Return (register, value) that switches hold-power on or off."""
    return spec.command, spec.on if on else spec.off


def hold_power_on(spec: HoldPowerSpec, status: int) -> bool:
    """Whether the status register says hold-power is on."""
    return bool(status >> spec.bit & 1)


_ALARM_LIMITS = {"uint16": 0xFFFF, "int16": 0x7FFF, "uint32": 0xFFFFFFFF, "int32": 0x7FFFFFFF}


def alarm_words(profile: MeterProfile, levels: AlarmLevels) -> tuple[int, list[int]]:
    """Return (address, words) of the one FC16 write that sets both alarm levels.

    RefusedCommand if the model has none or the levels do not fit its registers.
    """
    spec = profile.alarm_thresholds
    if spec is None:
        raise RefusedCommand(f"profile {profile.name} has no alarm thresholds")
    if levels.second < 0 or levels.first < levels.second:
        raise RefusedCommand(f"alarm levels {levels.first}, {levels.second}: first >= second >= 0")
    words: list[int] = []
    for value, register in ((levels.first, spec.first), (levels.second, spec.second)):
        raw = value / register.scale
        if raw != raw.to_integral_value() or raw > _ALARM_LIMITS[register.type]:
            raise RefusedCommand(f"alarm level {value} does not fit a {register.type}")
        words += encode_value(value, register, profile.word_order)
    return spec.first.address, words


def alarm_levels_read(profile: MeterProfile, words: list[int]) -> AlarmLevels:
    """Decode the alarm levels read back from their block."""
    spec = profile.alarm_thresholds
    assert spec is not None
    first = decode_value(words[: spec.first.words], spec.first, profile.word_order)
    second = decode_value(words[spec.first.words :], spec.second, profile.word_order)
    return AlarmLevels(first, second)


def power_limit_words(profile: MeterProfile, kw: Decimal) -> tuple[int, list[int]]:
    """Return (address, words) of the write that sets the power limit.

    RefusedCommand if the model has none or the limit does not fit its register.
    """
    spec = profile.power_limit
    if spec is None:
        raise RefusedCommand(f"profile {profile.name} has no power limit")
    register = spec.limit
    raw = kw / register.scale
    if kw <= 0 or raw != raw.to_integral_value() or raw > _ALARM_LIMITS[register.type]:
        raise RefusedCommand(f"power limit {kw} kW does not fit a {register.type}")
    return register.address, encode_value(kw, register, profile.word_order)


def power_limit_read(profile: MeterProfile, words: list[int]) -> Decimal:
    """Decode the power limit (kW) read back from its register."""
    spec = profile.power_limit
    assert spec is not None
    return decode_value(words, spec.limit, profile.word_order)


def local_time(moment: datetime, zone: tzinfo | None) -> datetime:
    """The meter's local wall-clock time (no zone) for a UTC instant."""
    local = moment.astimezone(zone) if zone is not None else moment.astimezone()
    return local.replace(tzinfo=None, microsecond=0)


def clock_words(moment: datetime) -> list[int]:
    """The six clock registers: year, month, day, hour, minute, second."""
    return [moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second]


def within(meter_time: datetime, wanted: datetime, seconds: int) -> bool:
    """Whether a clock read back is within ``seconds`` of the time set."""
    return abs((meter_time - wanted).total_seconds()) <= seconds
