"""Tariffs: what energy costs.

A tariff prices *billed* energy (metered energy times the meter's CT x PT multiplier, plus
the tariff's line-loss share) split into the four time-of-use periods. Every shape is a
cumulative function ``energy_charge(energy so far in the cycle)``; rating charges the
difference between successive values, rounded once (see rating), so any split of the same
consumption costs the same to the fen.

Shapes:

* ``flat``: one price per kWh.
* ``tou``: a price per period (sharp, peak, flat, valley).
* ``tiered``: a base price plus a surcharge per tier of cumulative consumption in the
  cycle (monthly or yearly, from a reset day).
* ``tiered_tou``: period prices plus the tier surcharges on the total.

Fixed charges (``daily_charge``, ``monthly_charge``) are posted by the calendar, not by
readings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from prepaid_common.contracts.api.billing import (
    PERIODS,
    Period,
    PeriodSpan,
    Season,
    TariffDefinition,
    Tier,
    TouCalendar,
)
from prepaid_common.errors import Invalid

__all__ = [
    "BEGINNING",
    "PERIODS",
    "Period",
    "PeriodEnergy",
    "PeriodSpan",
    "Season",
    "TariffDefinition",
    "Tier",
    "TouCalendar",
    "cycle_start",
    "energy_charge",
    "next_cycle_start",
    "period_at",
    "split_by_calendar",
    "version_effective_from",
]

ZERO = Decimal(0)
# The first version of a tariff applies from the beginning of time.
BEGINNING = datetime(2000, 1, 1, tzinfo=UTC)
# A new version "from now" sent a little late is still now, not back-dated.
BACKDATING_GRACE = timedelta(minutes=5)


@dataclass(frozen=True)
class PeriodEnergy:
    """kWh by time-of-use period. Meters and tariffs without TOU use ``flat`` only."""

    sharp: Decimal = ZERO
    peak: Decimal = ZERO
    flat: Decimal = ZERO
    valley: Decimal = ZERO

    @classmethod
    def of(cls, values: Mapping[Period, Decimal] | Mapping[str, Decimal]) -> PeriodEnergy:
        lookup: Mapping[str, Decimal] = values  # type: ignore[assignment]
        return cls(**{p: Decimal(lookup.get(p, ZERO)) for p in PERIODS})

    @classmethod
    def all_flat(cls, kwh: Decimal) -> PeriodEnergy:
        return cls(flat=kwh)

    def get(self, period: Period) -> Decimal:
        value: Decimal = getattr(self, period)
        return value

    @property
    def total(self) -> Decimal:
        return self.sharp + self.peak + self.flat + self.valley

    def __add__(self, other: PeriodEnergy) -> PeriodEnergy:
        return PeriodEnergy(*(self.get(p) + other.get(p) for p in PERIODS))

    def __sub__(self, other: PeriodEnergy) -> PeriodEnergy:
        return PeriodEnergy(*(self.get(p) - other.get(p) for p in PERIODS))

    def scaled(self, factor: Decimal) -> PeriodEnergy:
        return PeriodEnergy(*(self.get(p) * factor for p in PERIODS))

    def as_strings(self) -> dict[str, str]:
        return {p: str(self.get(p)) for p in PERIODS}

    def any_negative(self) -> bool:
        return any(self.get(p) < 0 for p in PERIODS)


def plan_for(calendar: TouCalendar, day: date) -> list[PeriodSpan]:
    """Return the day plan a calendar gives this day (rest days have their own)."""
    season = next(s for s in calendar.seasons if day.month in s.months)
    rest = day.weekday() in calendar.rest_weekdays or day in calendar.holidays
    return (season.rest_day or season.workday) if rest else season.workday


def period_at(calendar: TouCalendar, local: datetime) -> Period:
    """Return the time-of-use period of a local time."""
    plan = plan_for(calendar, local.date())
    current = plan[0].period
    for span in plan:
        if span.start <= local.time():
            current = span.period
    return current


def energy_charge(tariff: TariffDefinition, energy: PeriodEnergy) -> Decimal:
    """Exact (unrounded) charge for billed energy accumulated in one cycle."""
    total = energy.total
    if tariff.uses_periods:
        assert tariff.period_prices is not None
        prices = tariff.period_prices
        base = sum((energy.get(p) * prices[p] for p in PERIODS), ZERO)
    else:
        assert tariff.price_per_kwh is not None
        base = total * tariff.price_per_kwh
    return base + _tier_surcharge(tariff, total)


def _tier_surcharge(tariff: TariffDefinition, total: Decimal) -> Decimal:
    surcharge, lower = ZERO, ZERO
    for tier in tariff.tiers:
        upper = tier.up_to_kwh
        in_band = (total if upper is None else min(total, upper)) - lower
        if in_band <= 0:
            break
        surcharge += in_band * tier.surcharge
        if upper is None:
            break
        lower = upper
    return surcharge


# --- the cycle tiers count in ------------------------------------------------------------
def cycle_start(tariff: TariffDefinition, instant: datetime, zone: ZoneInfo) -> datetime:
    """Return the start (aware, UTC-comparable) of the cycle that contains ``instant``."""
    local = instant.astimezone(zone)
    if tariff.cycle == "monthly":
        start = local.replace(day=tariff.cycle_reset_day, hour=0, minute=0, second=0, microsecond=0)
        if start > local:
            start = _add_months(start, -1)
    else:
        start = local.replace(
            month=tariff.cycle_reset_month,
            day=tariff.cycle_reset_day,
            hour=0,
            minute=0,
            second=0,
            microsecond=0,
        )
        if start > local:
            start = start.replace(year=start.year - 1)
    return start


def next_cycle_start(tariff: TariffDefinition, start: datetime) -> datetime:
    """Return the start of the cycle after the one starting at ``start``."""
    if tariff.cycle == "monthly":
        return _add_months(start, 1)
    return start.replace(year=start.year + 1)


def _add_months(moment: datetime, months: int) -> datetime:
    index = moment.year * 12 + moment.month - 1 + months
    return moment.replace(year=index // 12, month=index % 12 + 1)


def split_by_calendar(
    energy_kwh: Decimal,
    start: datetime,
    end: datetime,
    calendar: TouCalendar,
    zone: ZoneInfo,
    step: timedelta = timedelta(minutes=15),
) -> PeriodEnergy:
    """Attribute energy used between two instants to periods in proportion to time.

    For meters without TOU registers. Period boundaries are on quarter hours in every
    practical calendar, so quarter-hour slices attribute exactly for a steady load.
    """
    seconds = Decimal(str((end - start).total_seconds()))
    if seconds <= 0 or energy_kwh == 0:
        return PeriodEnergy()
    shares: dict[Period, Decimal] = dict.fromkeys(PERIODS, ZERO)
    cursor = start
    while cursor < end:
        local = cursor.astimezone(zone)
        # Next quarter-hour boundary in local time, or the end.
        boundary = local.replace(second=0, microsecond=0) - timedelta(minutes=local.minute % 15)
        following = min(boundary + step, end.astimezone(zone))
        shares[period_at(calendar, local)] += Decimal(str((following - local).total_seconds()))
        cursor = following.astimezone(start.tzinfo)
    parts = {p: (energy_kwh * shares[p] / seconds) for p in PERIODS}
    # Keep the parts summing exactly to the whole.
    biggest = max(PERIODS, key=lambda p: shares[p])
    parts[biggest] = energy_kwh - sum((parts[p] for p in PERIODS if p != biggest), ZERO)
    return PeriodEnergy.of(parts)


def version_effective_from(
    *, tariff_exists: bool, requested: datetime | None, now: datetime
) -> datetime:
    """Return when a new tariff version takes effect; refuse a back-dated one.

    A new tariff's first version applies from the beginning; a later version from the
    instant asked for (now when omitted), never in the past: readings already rated under
    the old version would otherwise be priced differently from their charges.
    """
    if not tariff_exists:
        return requested or BEGINNING
    effective = requested or now
    if effective < now - BACKDATING_GRACE:
        raise Invalid("a new version cannot take effect in the past")
    return effective
