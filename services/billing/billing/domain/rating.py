"""Rating consumption from cumulative energy registers.

A meter's registers only ever grow. Billing keeps, per meter binding, a *position*: the
last reading rated, the billed energy accumulated in the current tariff cycle (by TOU
period), and the charge already posted for the current *segment* (the part of the cycle
under one tariff version). A new reading moves the position forward and is charged

    round(C(cycle energy now) - C(cycle energy at segment start)) - already charged

where C is the tariff's cumulative charge function. Rounding therefore telescopes: the
total charged is the same, to the fen, whether consumption arrives as one reading or as
many, in any order, with duplicates (splitting invariance).

Where an interval between two readings crosses a cycle reset or a tariff version change,
its energy is split at that instant in proportion to time (the one place the split is an
estimate; readings every few minutes keep it close).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from zoneinfo import ZoneInfo

from billing.domain import tariffs
from billing.domain.money import ZERO, round_money
from billing.domain.tariffs import (
    PERIODS,
    PeriodEnergy,
    TariffDefinition,
    split_by_calendar,
)

# The most a meter could physically measure per hour; above it a jump is a bad frame or
# the wrong meter answering, not consumption.
DEFAULT_MAX_POWER_KW = Decimal(1000)
# Energy split at a boundary is kept to a micro-kWh; the remainder goes to the last part.
SPLIT_QUANTUM = Decimal("0.000001")


@dataclass(frozen=True)
class MeterReading:
    read_at: datetime
    total_kwh: Decimal
    # The meter's own time-of-use registers, when its profile has them.
    tou_kwh: PeriodEnergy | None = None


@dataclass(frozen=True)
class TariffVersion:
    version_id: str
    effective_from: datetime
    definition: TariffDefinition


@dataclass(frozen=True)
class Position:
    """Where a meter binding stands."""

    last: MeterReading | None = None
    cycle_start: datetime | None = None
    cycle_energy: PeriodEnergy = field(default_factory=PeriodEnergy)
    segment_version: str | None = None
    segment_base: PeriodEnergy = field(default_factory=PeriodEnergy)
    segment_charged: Decimal = ZERO
    # The earliest reading rated from. Readings reach billing in any order after a binding
    # (outbox replays, several collector replicas): one older than this extends the start
    # back instead of being dropped as stale. None in positions stored before it was kept.
    opened: MeterReading | None = None


class Verdict(StrEnum):
    CHARGE = "charge"
    FIRST = "first"  # the first reading fixes the start; nothing to charge
    STALE = "stale"  # late or duplicate: the position is already past it
    # Older than the start, and the interval back to it cannot be rated exactly (another
    # cycle or tariff version than the one the start opened): an anomaly, nothing charged.
    BEFORE_START = "before_start"
    BACKWARDS = "register_backwards"
    IMPLAUSIBLE = "implausible_jump"


@dataclass(frozen=True)
class Rating:
    """What one reading does to a position."""

    verdict: Verdict
    position: Position
    charge: Decimal = ZERO
    metered_kwh: Decimal = ZERO
    billed_kwh: Decimal = ZERO
    detail: str = ""


def version_at(versions: Sequence[TariffVersion], instant: datetime) -> TariffVersion:
    """The tariff version in force at an instant (the first one before any took effect)."""
    current = versions[0]
    for version in versions:
        if version.effective_from <= instant:
            current = version
    return current


def rate_reading(
    position: Position,
    reading: MeterReading,
    *,
    versions: Sequence[TariffVersion],
    zone: ZoneInfo,
    multiplier: Decimal = Decimal(1),
    max_power_kw: Decimal = DEFAULT_MAX_POWER_KW,
) -> Rating:
    """Rate one cumulative reading against a position under a tariff's versions."""
    if not versions:
        raise ValueError("a tariff needs at least one version")
    versions = sorted(versions, key=lambda v: v.effective_from)
    last = position.last
    if last is None:
        first = version_at(versions, reading.read_at)
        opened = Position(
            last=reading,
            cycle_start=tariffs.cycle_start(first.definition, reading.read_at, zone),
            segment_version=first.version_id,
            opened=reading,
        )
        return Rating(Verdict.FIRST, opened)
    if reading.read_at <= last.read_at:
        opening = position.opened
        if opening is not None and reading.read_at < opening.read_at:
            return _rate_before_start(
                position,
                reading,
                opening,
                versions=versions,
                zone=zone,
                multiplier=multiplier,
                max_power_kw=max_power_kw,
            )
        return Rating(Verdict.STALE, position)
    if reading.total_kwh < last.total_kwh:
        return Rating(
            Verdict.BACKWARDS,
            position,
            detail=f"register fell from {last.total_kwh} to {reading.total_kwh} kWh",
        )
    hours = Decimal(str((reading.read_at - last.read_at).total_seconds())) / Decimal(3600)
    metered = reading.total_kwh - last.total_kwh
    if metered > max_power_kw * hours + Decimal("0.01"):
        return Rating(
            Verdict.IMPLAUSIBLE,
            position,
            detail=f"{metered} kWh in {hours:.4f} h exceeds {max_power_kw} kW",
        )
    tariff_now = version_at(versions, reading.read_at).definition
    by_period = _metered_by_period(last, reading, tariff_now, zone)
    if by_period is None:
        return Rating(
            Verdict.BACKWARDS, position, detail="a time-of-use register fell between readings"
        )

    moved = position
    charge = ZERO
    billed_total = ZERO
    for (start, _end), part in _split_at_boundaries(
        last.read_at, reading.read_at, by_period, versions, position, zone
    ):
        version = version_at(versions, start)
        tariff = version.definition
        assert moved.cycle_start is not None
        if start >= tariffs.next_cycle_start(tariff, moved.cycle_start.astimezone(zone)):
            moved = replace(
                moved,
                cycle_start=tariffs.cycle_start(tariff, start, zone),
                cycle_energy=PeriodEnergy(),
                segment_version=version.version_id,
                segment_base=PeriodEnergy(),
                segment_charged=ZERO,
            )
        elif version.version_id != moved.segment_version:
            moved = replace(
                moved,
                segment_version=version.version_id,
                segment_base=moved.cycle_energy,
                segment_charged=ZERO,
            )
        billed = part.scaled(multiplier * (1 + tariff.loss_factor))
        billed_total += billed.total
        energy = moved.cycle_energy + billed
        segment_total = round_money(
            tariffs.energy_charge(tariff, energy)
            - tariffs.energy_charge(tariff, moved.segment_base)
        )
        charge += segment_total - moved.segment_charged
        moved = replace(moved, cycle_energy=energy, segment_charged=segment_total)
    moved = replace(moved, last=reading)
    return Rating(Verdict.CHARGE, moved, charge, metered, billed_total)


def _rate_before_start(
    position: Position,
    reading: MeterReading,
    start: MeterReading,
    *,
    versions: Sequence[TariffVersion],
    zone: ZoneInfo,
    multiplier: Decimal,
    max_power_kw: Decimal,
) -> Rating:
    """Rate the interval from a reading older than the start up to the start.

    A cycle's charge is a function of the cycle's energy alone, so energy added in any
    order within one segment (one cycle under one tariff version) sums to the same charge
    to the fen: the interval is added to the cycle energy as if it had come first. Outside
    the start's segment the charge would depend on what was charged in another cycle or
    version, which the position no longer holds: that is an anomaly, not a guess.
    """
    if reading.total_kwh > start.total_kwh:
        return Rating(
            Verdict.BACKWARDS,
            position,
            detail=f"register fell from {reading.total_kwh} to {start.total_kwh} kWh",
        )
    hours = Decimal(str((start.read_at - reading.read_at).total_seconds())) / Decimal(3600)
    metered = start.total_kwh - reading.total_kwh
    if metered > max_power_kw * hours + Decimal("0.01"):
        return Rating(
            Verdict.IMPLAUSIBLE,
            position,
            detail=f"{metered} kWh in {hours:.4f} h exceeds {max_power_kw} kW",
        )
    version = version_at(versions, reading.read_at)
    tariff = version.definition
    cycle_start = tariffs.cycle_start(tariff, reading.read_at, zone)
    same_segment = (
        version.version_id == position.segment_version
        and version is version_at(versions, start.read_at)
        and cycle_start == position.cycle_start
        and start.read_at < tariffs.next_cycle_start(tariff, cycle_start.astimezone(zone))
    )
    if not same_segment:
        return Rating(
            Verdict.BEFORE_START,
            position,
            detail=(
                f"reading of {reading.read_at.isoformat()} is older than the start "
                f"{start.read_at.isoformat()} across a cycle or tariff change: "
                f"{metered} kWh not billed"
            ),
        )
    by_period = _metered_by_period(reading, start, tariff, zone)
    if by_period is None:
        return Rating(
            Verdict.BACKWARDS, position, detail="a time-of-use register fell between readings"
        )
    billed = by_period.scaled(multiplier * (1 + tariff.loss_factor))
    energy = position.cycle_energy + billed
    segment_total = round_money(
        tariffs.energy_charge(tariff, energy) - tariffs.energy_charge(tariff, position.segment_base)
    )
    moved = replace(position, cycle_energy=energy, segment_charged=segment_total, opened=reading)
    return Rating(
        Verdict.CHARGE, moved, segment_total - position.segment_charged, metered, billed.total
    )


def _metered_by_period(
    last: MeterReading, reading: MeterReading, tariff: TariffDefinition, zone: ZoneInfo
) -> PeriodEnergy | None:
    metered = reading.total_kwh - last.total_kwh
    if not tariff.uses_periods:
        return PeriodEnergy.all_flat(metered)
    if reading.tou_kwh is not None and last.tou_kwh is not None:
        delta = reading.tou_kwh - last.tou_kwh
        return None if delta.any_negative() else delta
    if tariff.calendar is not None:
        return split_by_calendar(metered, last.read_at, reading.read_at, tariff.calendar, zone)
    return PeriodEnergy.all_flat(metered)


def _split_at_boundaries(
    start: datetime,
    end: datetime,
    energy: PeriodEnergy,
    versions: Sequence[TariffVersion],
    position: Position,
    zone: ZoneInfo,
) -> list[tuple[tuple[datetime, datetime], PeriodEnergy]]:
    """Cut [start, end) at cycle resets and version changes; share energy by time."""
    cuts = {v.effective_from for v in versions if start < v.effective_from < end}
    assert position.cycle_start is not None
    cycle = position.cycle_start.astimezone(zone)
    while True:
        cycle = tariffs.next_cycle_start(version_at(versions, cycle).definition, cycle)
        if cycle >= end:
            break
        if cycle > start:
            cuts.add(cycle)
    instants = [start, *sorted(cuts), end]
    whole = Decimal(str((end - start).total_seconds()))
    parts: list[tuple[tuple[datetime, datetime], PeriodEnergy]] = []
    given = PeriodEnergy()
    for index, (a, b) in enumerate(itertools.pairwise(instants)):
        if index == len(instants) - 2:
            share = energy - given
        else:
            fraction = Decimal(str((b - a).total_seconds())) / whole
            share = PeriodEnergy.of(
                {p: (energy.get(p) * fraction).quantize(SPLIT_QUANTUM) for p in PERIODS}
            )
            given = given + share
        parts.append(((a, b), share))
    return parts


def position_to_json(position: Position) -> dict[str, object]:
    """Serialise a position exactly (decimals as strings) for storage."""
    return {
        "last": _reading_to_json(position.last),
        "cycle_start": None if position.cycle_start is None else position.cycle_start.isoformat(),
        "cycle_energy": position.cycle_energy.as_strings(),
        "segment_version": position.segment_version,
        "segment_base": position.segment_base.as_strings(),
        "segment_charged": str(position.segment_charged),
        "opened": _reading_to_json(position.opened),
    }


def _reading_to_json(reading: MeterReading | None) -> dict[str, object] | None:
    if reading is None:
        return None
    return {
        "read_at": reading.read_at.isoformat(),
        "total_kwh": str(reading.total_kwh),
        "tou_kwh": None if reading.tou_kwh is None else reading.tou_kwh.as_strings(),
    }


def position_from_json(raw: dict[str, object] | None) -> Position:
    """Read back what ``position_to_json`` wrote (``opened`` absent in older positions)."""
    if not raw:
        return Position()
    cycle_start = raw.get("cycle_start")
    segment_version = raw.get("segment_version")
    return Position(
        last=_reading_from_json(raw.get("last")),
        cycle_start=None if cycle_start is None else datetime.fromisoformat(str(cycle_start)),
        cycle_energy=_energy_from_json(raw["cycle_energy"]),
        segment_version=None if segment_version is None else str(segment_version),
        segment_base=_energy_from_json(raw["segment_base"]),
        segment_charged=Decimal(str(raw["segment_charged"])),
        opened=_reading_from_json(raw.get("opened")),
    )


def _energy_from_json(value: object) -> PeriodEnergy:
    assert isinstance(value, dict)
    return PeriodEnergy.of({k: Decimal(v) for k, v in value.items()})


def _reading_from_json(raw: object) -> MeterReading | None:
    if not isinstance(raw, dict):
        return None
    tou = raw.get("tou_kwh")
    return MeterReading(
        read_at=datetime.fromisoformat(str(raw["read_at"])),
        total_kwh=Decimal(str(raw["total_kwh"])),
        tou_kwh=None if tou is None else _energy_from_json(tou),
    )
