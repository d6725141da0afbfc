"""The daily load curve and the time-of-use period table the simulated meters follow."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Literal

Period = Literal["sharp", "peak", "flat", "valley"]
PERIODS: tuple[Period, ...] = ("sharp", "peak", "flat", "valley")

SECONDS_PER_HOUR = 3600.0
SECONDS_PER_DAY = 24 * SECONDS_PER_HOUR

# Fraction of a meter's base load drawn in each local hour: low at night, a midday hump
# and the evening peak. Never zero, so energy keeps growing visibly at any hour.
DAILY_LOAD_SHAPE: tuple[float, ...] = (
    0.35, 0.30, 0.30, 0.30, 0.30, 0.35, 0.50, 0.80,  # 00-07
    0.90, 0.85, 0.90, 1.10, 1.20, 1.00, 0.85, 0.80,  # 08-15
    0.85, 1.10, 1.40, 1.50, 1.40, 1.20, 0.80, 0.50,  # 16-23
)  # fmt: skip

# Time-of-use period of each local hour (the simulator's own simple table):
#   sharp  19:00-21:00
#   peak   08:00-11:00, 17:00-19:00, 21:00-23:00
#   flat   07:00-08:00, 11:00-17:00
#   valley 23:00-07:00
TOU_PERIOD_BY_HOUR: tuple[Period, ...] = (
    "valley", "valley", "valley", "valley", "valley", "valley", "valley", "flat",  # 00-07
    "peak", "peak", "peak", "flat", "flat", "flat", "flat", "flat",  # 08-15
    "flat", "peak", "peak", "sharp", "sharp", "peak", "peak", "valley",  # 16-23
)  # fmt: skip


def hourly_load_kw(base_load_kw: float, rng: random.Random) -> tuple[float, ...]:
    """Return a meter's own power in each hour: the shared shape, jittered by ±15 %."""
    return tuple(base_load_kw * share * rng.uniform(0.85, 1.15) for share in DAILY_LOAD_SHAPE)


def hour_of_day(seconds: float) -> int:
    """Return the local hour (0-23) at ``seconds`` after a midnight."""
    return int(seconds // SECONDS_PER_HOUR) % 24


def energy_between(hourly_kw: Sequence[float], start: float, end: float) -> dict[Period, float]:
    """Integrate an hourly-constant power over [start, end) seconds; kWh per TOU period."""
    energy: dict[Period, float] = dict.fromkeys(PERIODS, 0.0)
    if end <= start:
        return energy
    full_days = int((end - start) // SECONDS_PER_DAY)
    if full_days:
        for hour, kw in enumerate(hourly_kw):
            energy[TOU_PERIOD_BY_HOUR[hour]] += kw * full_days
        start += full_days * SECONDS_PER_DAY
    moment = start
    while moment < end:
        hour_index = int(moment // SECONDS_PER_HOUR)
        until = min(end, (hour_index + 1) * SECONDS_PER_HOUR)
        hour = hour_index % 24
        energy[TOU_PERIOD_BY_HOUR[hour]] += hourly_kw[hour] * (until - moment) / SECONDS_PER_HOUR
        moment = until
    return energy
