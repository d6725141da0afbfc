"""The simulated meter's physics: load curve, lazy energy, relay, TOU split, clock."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from simulator import FieldSimulator, SimClock, SimulatedMeter
from simulator.field import assign_profiles
from simulator.loadcurve import DAILY_LOAD_SHAPE, TOU_PERIOD_BY_HOUR, energy_between

MIDNIGHT = datetime(2025, 3, 1, 0, 0, 0)


class ManualTime:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_meter(
    time: ManualTime, *, speed: float = 1.0, start: datetime = MIDNIGHT, base_load_kw: float = 2.0
) -> SimulatedMeter:
    clock = SimClock(speed=speed, start=start, monotonic=time)
    return SimulatedMeter(
        meter_id="DTU0001-01",
        unit_id=1,
        profile="reference-prepaid",
        base_load_kw=base_load_kw,
        clock=clock,
    )


def test_energy_follows_the_hourly_power_while_the_relay_is_closed() -> None:
    time = ManualTime()
    meter = make_meter(time, start=MIDNIGHT.replace(hour=12, minute=10))
    power = meter.power_kw()
    time.advance(1800)  # stays within the 12:00 hour
    assert meter.energy_kwh() == pytest.approx(power * 0.5)
    assert meter.power_kw() == power
    assert 2.0 * 1.2 * 0.85 <= power <= 2.0 * 1.2 * 1.15


def test_an_open_relay_stops_energy_and_power() -> None:
    time = ManualTime()
    meter = make_meter(time)
    time.advance(600)
    meter.relay = "open"
    frozen = meter.energy_kwh()
    assert frozen > 0
    time.advance(7200)
    assert meter.energy_kwh() == frozen
    assert meter.power_kw() == 0.0
    meter.relay = "closed"
    time.advance(600)
    assert meter.energy_kwh() > frozen


def test_speed_multiplies_simulated_time() -> None:
    slow, fast = ManualTime(), ManualTime()
    normal = make_meter(slow, speed=1.0)
    sped_up = make_meter(fast, speed=60.0)
    slow.advance(60 * 30)
    fast.advance(30)
    assert sped_up.energy_kwh() == pytest.approx(normal.energy_kwh())


def test_speed_60_makes_energy_visible_within_seconds() -> None:
    time = ManualTime()
    meter = make_meter(time, speed=60.0, start=MIDNIGHT.replace(hour=3), base_load_kw=0.5)
    time.advance(1.0)
    # The night's trough is the slowest: still at least 0.01 kWh (one register count).
    assert meter.energy_kwh() >= 0.5 * min(DAILY_LOAD_SHAPE) * 0.85 * 60 / 3600


def test_changing_the_base_load_keeps_the_energy_already_used() -> None:
    time = ManualTime()
    meter = make_meter(time, start=MIDNIGHT.replace(hour=9))
    time.advance(600)
    before = meter.energy_kwh()
    meter.base_load_kw = 4.0
    assert meter.energy_kwh() == before
    doubled = meter.power_kw()
    meter.base_load_kw = 2.0
    assert doubled == pytest.approx(2 * meter.power_kw())


def test_a_whole_day_splits_into_the_tou_periods_of_its_hours() -> None:
    hourly = [float(hour + 1) for hour in range(24)]
    energy = energy_between(hourly, 3600 * 5 + 17, 3600 * 5 + 17 + 86400)
    for period in ("sharp", "peak", "flat", "valley"):
        expected = sum(kw for hour, kw in enumerate(hourly) if TOU_PERIOD_BY_HOUR[hour] == period)
        assert energy[period] == pytest.approx(expected)


@given(
    start=st.floats(min_value=0, max_value=10 * 86400),
    first=st.floats(min_value=0, max_value=3 * 86400),
    second=st.floats(min_value=0, max_value=3 * 86400),
)
def test_integration_is_additive_over_any_split(start: float, first: float, second: float) -> None:
    hourly = [0.5 + (hour % 7) for hour in range(24)]
    whole = sum(energy_between(hourly, start, start + first + second).values())
    parts = sum(energy_between(hourly, start, start + first).values()) + sum(
        energy_between(hourly, start + first, start + first + second).values()
    )
    assert whole == pytest.approx(parts, rel=1e-9, abs=1e-9)


def test_the_meter_clock_runs_with_simulated_time_and_can_be_set() -> None:
    time = ManualTime()
    meter = make_meter(time, speed=60.0, start=MIDNIGHT.replace(hour=8))
    time.advance(10)
    assert meter.meter_time() == datetime(2025, 3, 1, 8, 10, 0)
    meter.set_meter_time(datetime(2030, 1, 2, 3, 4, 5))
    time.advance(1)
    assert meter.meter_time() == datetime(2030, 1, 2, 3, 5, 5)


def test_profiles_are_shared_by_weight() -> None:
    shares = assign_profiles(
        {"reference-prepaid": 0.8, "acrel-ddsy1352": 0.1, "eastron-sdm120": 0.1}, 10
    )
    assert sorted(shares) == ["acrel-ddsy1352", "eastron-sdm120"] + ["reference-prepaid"] * 8
    with pytest.raises(ValueError, match="unknown profiles"):
        assign_profiles({"no-such-meter": 1.0}, 3)


def test_the_field_is_deterministic_from_its_seed() -> None:
    def layout(seed: int) -> list[tuple[str, int, str, float]]:
        field = FieldSimulator(3, 4, seed=seed, start=MIDNIGHT)
        return [
            (m.meter_id, m.unit_id, m.profile, m.base_load_kw)
            for dtu in field.dtus
            for m in dtu.meters
        ]

    assert layout(7) == layout(7)
    assert layout(7) != layout(8)
    first = layout(7)
    assert first[0][0] == "DTU0001-01"
    assert first[-1][:2] == ("DTU0003-04", 4)
    assert all(0.5 <= load <= 5.0 for *_rest, load in first)
