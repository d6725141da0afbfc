"""Rating many readings quickly, with the very arithmetic of ``rating.rate_reading``.

``rate_reading`` is the rule (and stays the reference): it sorts the versions, cuts every
interval at cycle resets and version changes and rebuilds the position through
``dataclasses.replace`` for each reading. Most readings need none of that: the interval
lies inside one cycle and one segment under one version. ``Rater.rate`` recognises that
plain case and computes it with the same ``Decimal`` operations in the same order (one
part, no split, the same rounding of the cumulative charge); anything else (a first,
stale, backwards or implausible reading, a cycle reset, a version change, a calendar
split) goes to ``rate_reading`` itself. ``tests/unit/billing/test_billing_rater.py``
proves with hypothesis that both give equal ratings for every tariff shape.

``position_text`` / ``position_from_text`` are the stored JSON of a position
(``json.dumps(position_to_json(...))`` and back), written without the generic encoder.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from billing.domain.money import ZERO, round_money
from billing.domain.rating import (
    DEFAULT_MAX_POWER_KW,
    MeterReading,
    Position,
    Rating,
    TariffVersion,
    Verdict,
    position_from_json,
    rate_reading,
)
from billing.domain.tariffs import ZERO as NO_KWH
from billing.domain.tariffs import PeriodEnergy

_HOUR = Decimal(3600)
_SLACK = Decimal("0.01")


class Rater:
    """One tariff's versions, sorted once, for rating many readings in one zone."""

    def __init__(self, versions: Sequence[TariffVersion], zone: ZoneInfo) -> None:
        if not versions:
            raise ValueError("a tariff needs at least one version")
        self.versions = sorted(versions, key=lambda v: v.effective_from)
        self.zone = zone
        self._effective = [v.effective_from for v in self.versions]
        # The next cycle start after a cycle start (local), by cycle start and version.
        self._next_cycle: dict[tuple[datetime, str], datetime] = {}

    def _version_at(self, instant: datetime) -> TariffVersion:
        """``rating.version_at``: the last version in force, else the first."""
        index = bisect_right(self._effective, instant)
        return self.versions[index - 1] if index else self.versions[0]

    def _cycle_end(self, cycle_start: datetime, version: TariffVersion) -> datetime:
        key = (cycle_start, version.version_id)
        end = self._next_cycle.get(key)
        if end is None:
            if len(self._next_cycle) > 4096:
                self._next_cycle.clear()
            end = self._next_cycle[key] = version.definition.next_cycle_start(
                cycle_start.astimezone(self.zone)
            )
        return end

    def rate(
        self,
        position: Position,
        reading: MeterReading,
        *,
        multiplier: Decimal = Decimal(1),
        max_power_kw: Decimal = DEFAULT_MAX_POWER_KW,
    ) -> Rating:
        """Exactly ``rate_reading(position, reading, ...)`` with this rater's versions."""
        rating = self._plain(position, reading, multiplier, max_power_kw)
        if rating is None:
            rating = rate_reading(
                position,
                reading,
                versions=self.versions,
                zone=self.zone,
                multiplier=multiplier,
                max_power_kw=max_power_kw,
            )
        return rating

    def _plain(
        self,
        position: Position,
        reading: MeterReading,
        multiplier: Decimal,
        max_power_kw: Decimal,
    ) -> Rating | None:
        """The plain case computed directly, or None to let ``rate_reading`` decide."""
        last = position.last
        cycle_start = position.cycle_start
        if last is None or cycle_start is None:
            return None
        start, end = last.read_at, reading.read_at
        if end <= start or reading.total_kwh < last.total_kwh:
            return None  # stale or backwards: rate_reading says so, cheaply
        hours = Decimal(str((end - start).total_seconds())) / _HOUR
        metered = reading.total_kwh - last.total_kwh
        if metered > max_power_kw * hours + _SLACK:
            return None  # implausible: rate_reading words the anomaly
        # One version over the whole interval: none takes effect in (start, end].
        index = bisect_right(self._effective, start)
        if index < len(self._effective) and self._effective[index] <= end:
            return None
        version = self.versions[index - 1] if index else self.versions[0]
        if version.version_id != position.segment_version:
            return None  # a new segment starts
        tariff = version.definition
        # No cycle reset inside the interval, nor at its start.
        if end >= self._cycle_end(cycle_start, self._version_at(cycle_start.astimezone(self.zone))):
            return None
        if start >= self._cycle_end(cycle_start, version):
            return None
        if not tariff.uses_periods:
            # all_flat(metered) less nothing given yet, as _split_at_boundaries has it.
            part = PeriodEnergy(NO_KWH - NO_KWH, NO_KWH - NO_KWH, metered - NO_KWH, NO_KWH - NO_KWH)
        elif reading.tou_kwh is not None and last.tou_kwh is not None:
            delta = reading.tou_kwh - last.tou_kwh
            if delta.any_negative():
                return None
            part = PeriodEnergy(
                delta.sharp - NO_KWH,
                delta.peak - NO_KWH,
                delta.flat - NO_KWH,
                delta.valley - NO_KWH,
            )
        else:
            return None  # split by the calendar: rate_reading
        factor = multiplier * (1 + tariff.loss_factor)
        billed = PeriodEnergy(
            part.sharp * factor, part.peak * factor, part.flat * factor, part.valley * factor
        )
        billed_total = ZERO + billed.total
        base = position.cycle_energy
        energy = PeriodEnergy(
            base.sharp + billed.sharp,
            base.peak + billed.peak,
            base.flat + billed.flat,
            base.valley + billed.valley,
        )
        segment_total = round_money(
            tariff.energy_charge(energy) - tariff.energy_charge(position.segment_base)
        )
        charge = ZERO + (segment_total - position.segment_charged)
        moved = Position(
            last=reading,
            cycle_start=cycle_start,
            cycle_energy=energy,
            segment_version=position.segment_version,
            segment_base=position.segment_base,
            segment_charged=segment_total,
        )
        return Rating(Verdict.CHARGE, moved, charge, metered, billed_total)


def _energy_text(energy: PeriodEnergy) -> str:
    return (
        f'{{"sharp": "{energy.sharp}", "peak": "{energy.peak}", '
        f'"flat": "{energy.flat}", "valley": "{energy.valley}"}}'
    )


def position_text(position: Position) -> str:
    """``json.dumps(position_to_json(position))``, written directly."""
    last = position.last
    if last is None:
        last_text = "null"
    else:
        tou = "null" if last.tou_kwh is None else _energy_text(last.tou_kwh)
        last_text = (
            f'{{"read_at": "{last.read_at.isoformat()}", "total_kwh": "{last.total_kwh}", '
            f'"tou_kwh": {tou}}}'
        )
    cycle_start = (
        "null" if position.cycle_start is None else f'"{position.cycle_start.isoformat()}"'
    )
    return (
        f'{{"last": {last_text}, "cycle_start": {cycle_start}, '
        f'"cycle_energy": {_energy_text(position.cycle_energy)}, '
        f'"segment_version": {json.dumps(position.segment_version)}, '
        f'"segment_base": {_energy_text(position.segment_base)}, '
        f'"segment_charged": "{position.segment_charged}"}}'
    )


def position_from_text(text: str | None) -> Position:
    """Read back a stored position (JSON text, or None for a meter never read)."""
    return position_from_json(None if text is None else json.loads(text))
