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
from datetime import datetime, timedelta, tzinfo
from decimal import Decimal
from zoneinfo import ZoneInfo

from billing.domain import tariffs
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
# A period without energy in a part: PeriodEnergy() less nothing given yet.
_NOTHING = NO_KWH - NO_KWH


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
        # The most energy a reading may add, by interval and maximum power.
        self._most: dict[tuple[timedelta, Decimal], Decimal] = {}

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
            end = self._next_cycle[key] = tariffs.next_cycle_start(
                version.definition, cycle_start.astimezone(self.zone)
            )
        return end

    def _most_kwh(self, interval: timedelta, max_power_kw: Decimal) -> Decimal:
        """``max_power_kw * hours + 0.01`` as ``rate_reading`` computes it, once per interval
        length (meters are read at a few regular intervals)."""
        key = (interval, max_power_kw)
        most = self._most.get(key)
        if most is None:
            if len(self._most) > 4096:
                self._most.clear()
            hours = Decimal(str(interval.total_seconds())) / _HOUR
            most = self._most[key] = max_power_kw * hours + _SLACK
        return most

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
        """The plain case computed directly, or None to let ``rate_reading`` decide.

        Every ``Decimal`` operation below is one ``rate_reading`` does on the same operands
        in the same order (``PeriodEnergy`` arithmetic spelt out per period), so results
        agree to the last digit and exponent, not only in value.
        """
        last = position.last
        cycle_start = position.cycle_start
        if last is None or cycle_start is None:
            return None
        start, end = last.read_at, reading.read_at
        total_kwh = reading.total_kwh
        if end <= start or total_kwh < last.total_kwh:
            return None  # stale or backwards: rate_reading says so, cheaply
        metered = total_kwh - last.total_kwh
        if metered > self._most_kwh(end - start, max_power_kw):
            return None  # implausible: rate_reading words the anomaly
        # One version over the whole interval: none takes effect in (start, end].
        effective = self._effective
        index = bisect_right(effective, start)
        if index < len(effective) and effective[index] <= end:
            return None
        version = self.versions[index - 1] if index else self.versions[0]
        if version.version_id != position.segment_version:
            return None  # a new segment starts
        tariff = version.definition
        # No cycle reset inside the interval (by the version in force at the cycle start),
        # nor at its start (by the interval's version); start < end, so one test when both
        # versions are the same.
        first = self._version_at(cycle_start)
        if end >= self._cycle_end(cycle_start, first):
            return None
        if first is not version and start >= self._cycle_end(cycle_start, version):
            return None
        # The part of the interval by period, as _split_at_boundaries gives its only part:
        # the energy by period less nothing given yet.
        if not tariff.uses_periods:
            sharp, peak, flat, valley = _NOTHING, _NOTHING, metered - NO_KWH, _NOTHING
        elif reading.tou_kwh is not None and last.tou_kwh is not None:
            now, then = reading.tou_kwh, last.tou_kwh
            sharp = now.sharp - then.sharp
            peak = now.peak - then.peak
            flat = now.flat - then.flat
            valley = now.valley - then.valley
            if sharp < 0 or peak < 0 or flat < 0 or valley < 0:
                return None
            sharp, peak, flat, valley = (
                sharp - NO_KWH,
                peak - NO_KWH,
                flat - NO_KWH,
                valley - NO_KWH,
            )
        else:
            return None  # split by the calendar: rate_reading
        # part.scaled(factor), then its total, then cycle energy + billed.
        factor = multiplier * (1 + tariff.loss_factor)
        sharp, peak, flat, valley = sharp * factor, peak * factor, flat * factor, valley * factor
        billed_total = ZERO + (sharp + peak + flat + valley)
        base = position.cycle_energy
        energy = PeriodEnergy(
            base.sharp + sharp, base.peak + peak, base.flat + flat, base.valley + valley
        )
        segment_total = round_money(
            tariffs.energy_charge(tariff, energy)
            - tariffs.energy_charge(tariff, position.segment_base)
        )
        charge = ZERO + (segment_total - position.segment_charged)
        moved = Position(
            reading,
            cycle_start,
            energy,
            position.segment_version,
            position.segment_base,
            segment_total,
            position.opened,
        )
        return Rating(Verdict.CHARGE, moved, charge, metered, billed_total)


def _energy_text(energy: PeriodEnergy) -> str:
    # !s: without it an f-string formats a Decimal through its __format__, three times
    # slower for the same text.
    return (
        f'{{"sharp": "{energy.sharp!s}", "peak": "{energy.peak!s}", '
        f'"flat": "{energy.flat!s}", "valley": "{energy.valley!s}"}}'
    )


# A cycle start's text by the instant, its zone and its fold: equal keys have the same
# local time and offset, so the same text; a meter's cycle starts are few.
_cycle_texts: dict[tuple[datetime, tzinfo | None, int], str] = {}
# json.dumps of a segment version (a version id, or None).
_version_texts: dict[str | None, str] = {}


def _cycle_text(instant: datetime) -> str:
    key = (instant, instant.tzinfo, instant.fold)
    text = _cycle_texts.get(key)
    if text is None:
        if len(_cycle_texts) > 4096:
            _cycle_texts.clear()
        text = _cycle_texts[key] = f'"{instant.isoformat()}"'
    return text


def _version_text(version: str | None) -> str:
    text = _version_texts.get(version)
    if text is None:
        if len(_version_texts) > 4096:
            _version_texts.clear()
        text = _version_texts[version] = json.dumps(version)
    return text


def position_text(position: Position) -> str:
    """``json.dumps(position_to_json(position))``, written directly."""
    last_text = _reading_text(position.last)
    opened = position.opened
    # The start is the last reading until another one comes: its text once.
    opened_text = last_text if opened is position.last else _reading_text(opened)
    cycle_start = "null" if position.cycle_start is None else _cycle_text(position.cycle_start)
    return (
        f'{{"last": {last_text}, "cycle_start": {cycle_start}, '
        f'"cycle_energy": {_energy_text(position.cycle_energy)}, '
        f'"segment_version": {_version_text(position.segment_version)}, '
        f'"segment_base": {_energy_text(position.segment_base)}, '
        f'"segment_charged": "{position.segment_charged!s}", "opened": {opened_text}}}'
    )


def _reading_text(reading: MeterReading | None) -> str:
    if reading is None:
        return "null"
    tou = "null" if reading.tou_kwh is None else _energy_text(reading.tou_kwh)
    return (
        f'{{"read_at": "{reading.read_at.isoformat()}", "total_kwh": "{reading.total_kwh!s}", '
        f'"tou_kwh": {tou}}}'
    )


def position_from_text(text: str | None) -> Position:
    """Read back a stored position (JSON text, or None for a meter never read)."""
    return position_from_json(None if text is None else json.loads(text))
