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
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, model_validator

Period = Literal["sharp", "peak", "flat", "valley"]
PERIODS: tuple[Period, ...] = ("sharp", "peak", "flat", "valley")
ZERO = Decimal(0)


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


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Tier(_Model):
    """A band of cumulative consumption in the cycle; the last band has no upper bound."""

    up_to_kwh: Decimal | None = Field(default=None, gt=0)
    surcharge: Decimal = Field(default=ZERO, ge=0, max_digits=10, decimal_places=4)


class PeriodSpan(_Model):
    """From ``start`` (HH:MM, local time) until the next span's start, the day is ``period``."""

    start: time
    period: Period


class Season(_Model):
    months: list[int] = Field(min_length=1)
    workday: list[PeriodSpan] = Field(min_length=1)
    # Weekends and holidays; the workday plan when omitted.
    rest_day: list[PeriodSpan] | None = None

    @model_validator(mode="after")
    def _check(self) -> Season:
        if any(not 1 <= m <= 12 for m in self.months):
            raise ValueError("months are 1-12")
        for plan in (self.workday, self.rest_day or []):
            starts = [span.start for span in plan]
            if starts != sorted(starts) or len(set(starts)) != len(starts):
                raise ValueError("period spans must start in increasing order")
            if starts and starts[0] != time(0, 0):
                raise ValueError("the first period span must start at 00:00")
        return self


class TouCalendar(_Model):
    """Which period each local time belongs to, by season and day type."""

    seasons: list[Season] = Field(min_length=1)
    rest_weekdays: list[int] = Field(default_factory=lambda: [5, 6], description="0=Monday")
    holidays: list[date] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> TouCalendar:
        covered = [m for season in self.seasons for m in season.months]
        if sorted(covered) != list(range(1, 13)):
            raise ValueError("seasons must cover each month exactly once")
        return self

    def plan_for(self, day: date) -> list[PeriodSpan]:
        season = next(s for s in self.seasons if day.month in s.months)
        rest = day.weekday() in self.rest_weekdays or day in self.holidays
        return (season.rest_day or season.workday) if rest else season.workday

    def period_at(self, local: datetime) -> Period:
        plan = self.plan_for(local.date())
        current = plan[0].period
        for span in plan:
            if span.start <= local.time():
                current = span.period
        return current


class TariffDefinition(_Model):
    """A tariff as operators write it (stored as JSON, versioned)."""

    kind: Literal["flat", "tou", "tiered", "tiered_tou"]
    price_per_kwh: Decimal | None = Field(default=None, ge=0, max_digits=10, decimal_places=4)
    period_prices: dict[Period, Decimal] | None = None
    # Used to split consumption into periods when a meter has no TOU registers.
    calendar: TouCalendar | None = None
    tiers: list[Tier] = Field(default_factory=list)
    cycle: Literal["monthly", "yearly"] = "monthly"
    cycle_reset_day: int = Field(default=1, ge=1, le=28)
    cycle_reset_month: int = Field(default=1, ge=1, le=12)
    loss_factor: Decimal = Field(default=ZERO, ge=0, lt=1, max_digits=6, decimal_places=4)
    daily_charge: Decimal = Field(default=ZERO, ge=0, max_digits=12, decimal_places=2)
    monthly_charge: Decimal = Field(default=ZERO, ge=0, max_digits=12, decimal_places=2)

    @model_validator(mode="after")
    def _check(self) -> TariffDefinition:
        uses_periods = self.kind in ("tou", "tiered_tou")
        if uses_periods:
            if self.period_prices is None or set(self.period_prices) != set(PERIODS):
                raise ValueError(f"{self.kind} needs period_prices for {', '.join(PERIODS)}")
            if any(
                p < 0 or p != p.quantize(Decimal("0.0001")) for p in self.period_prices.values()
            ):
                raise ValueError("period prices are >= 0 with at most 4 decimals")
        elif self.price_per_kwh is None:
            raise ValueError(f"{self.kind} needs price_per_kwh")
        tiered = self.kind in ("tiered", "tiered_tou")
        if tiered:
            if not self.tiers or self.tiers[-1].up_to_kwh is not None:
                raise ValueError("tiers must end with a band without up_to_kwh")
            bounds = [t.up_to_kwh for t in self.tiers[:-1]]
            known = [b for b in bounds if b is not None]
            if len(known) != len(bounds) or known != sorted(set(known)):
                raise ValueError("tier bounds must increase")
        elif self.tiers:
            raise ValueError(f"a {self.kind} tariff has no tiers")
        return self

    @property
    def uses_periods(self) -> bool:
        return self.kind in ("tou", "tiered_tou")

    def energy_charge(self, energy: PeriodEnergy) -> Decimal:
        """Exact (unrounded) charge for billed energy accumulated in one cycle."""
        total = energy.total
        if self.uses_periods:
            assert self.period_prices is not None
            base = sum((energy.get(p) * self.period_prices[p] for p in PERIODS), ZERO)
        else:
            assert self.price_per_kwh is not None
            base = total * self.price_per_kwh
        return base + self._tier_surcharge(total)

    def _tier_surcharge(self, total: Decimal) -> Decimal:
        surcharge, lower = ZERO, ZERO
        for tier in self.tiers:
            upper = tier.up_to_kwh
            in_band = (total if upper is None else min(total, upper)) - lower
            if in_band <= 0:
                break
            surcharge += in_band * tier.surcharge
            if upper is None:
                break
            lower = upper
        return surcharge

    # --- the cycle tiers count in --------------------------------------------------------
    def cycle_start(self, instant: datetime, zone: ZoneInfo) -> datetime:
        """The start (aware, UTC-comparable) of the cycle that contains ``instant``."""
        local = instant.astimezone(zone)
        if self.cycle == "monthly":
            start = local.replace(
                day=self.cycle_reset_day, hour=0, minute=0, second=0, microsecond=0
            )
            if start > local:
                start = _add_months(start, -1)
        else:
            start = local.replace(
                month=self.cycle_reset_month,
                day=self.cycle_reset_day,
                hour=0,
                minute=0,
                second=0,
                microsecond=0,
            )
            if start > local:
                start = start.replace(year=start.year - 1)
        return start

    def next_cycle_start(self, cycle_start: datetime) -> datetime:
        if self.cycle == "monthly":
            return _add_months(cycle_start, 1)
        return cycle_start.replace(year=cycle_start.year + 1)


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
        shares[calendar.period_at(local)] += Decimal(str((following - local).total_seconds()))
        cursor = following.astimezone(start.tzinfo)
    parts = {p: (energy_kwh * shares[p] / seconds) for p in PERIODS}
    # Keep the parts summing exactly to the whole.
    biggest = max(PERIODS, key=lambda p: shares[p])
    parts[biggest] = energy_kwh - sum((parts[p] for p in PERIODS if p != biggest), ZERO)
    return PeriodEnergy.of(parts)
