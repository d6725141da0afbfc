"""The shipped profiles decode what the field simulator's register maps encode."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest
from collector.domain import MeterProfile, decode_reading, plan_profile_reads, registers_from_blocks
from collector.profiles import load_profiles
from simulator import SimClock, SimulatedMeter
from simulator.registers import REGISTER_MAPS

PROFILES = load_profiles()


@pytest.mark.parametrize("profile_name", sorted(REGISTER_MAPS))
def test_profile_decodes_the_simulated_meter(profile_name: str) -> None:
    meter = SimulatedMeter(
        meter_id="DTU0001-01",
        unit_id=1,
        profile=profile_name,
        base_load_kw=2.5,
        clock=SimClock(start=datetime(2025, 1, 1, 19, 30), monotonic=lambda: 0.0),
        initial_energy_kwh=4321.09,
    )
    meter.local_credit, meter.purchase_count = Decimal("-3.21"), 9
    profile = PROFILES[profile_name]
    assert isinstance(profile, MeterProfile)
    register_map = REGISTER_MAPS[profile_name]
    blocks = plan_profile_reads(profile)
    results = [register_map.read(meter, block.address, block.count) for block in blocks]
    reading = decode_reading(profile, registers_from_blocks(blocks, results))
    assert reading.energy_kwh == Decimal("4321.090")
    if "power_kw" not in profile.registers:
        assert reading.power_kw is None
    else:
        assert reading.power_kw is not None
        assert abs(reading.power_kw - Decimal(str(meter.power_kw()))) <= Decimal("0.001")
    assert reading.relay == ("closed" if profile.has_relay else None)
    local = (Decimal("-3.21"), 9) if profile.has_local_credit else (None, None)
    assert (reading.local_credit, reading.purchase_count) == local
    assert profile.has_relay == register_map.has_relay
