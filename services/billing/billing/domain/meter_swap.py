"""Replacing a meter (换表): the old meter is charged to its final register, and the new one
continues its cycle from its starting register, so tiers keep counting."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from prepaid_common.errors import Invalid

from billing.domain.rating import MeterReading, Position

# An operator's final reading is trusted: no plausibility limit on the last jump.
TRUSTED_MAX_POWER_KW = Decimal("1e12")


def final_reading(position: Position, *, final_kwh: Decimal, now: datetime) -> MeterReading:
    """Return the old meter's final reading; refuse one below what was already rated."""
    last = position.last
    assert last is not None
    if final_kwh < last.total_kwh:
        raise Invalid(f"final reading {final_kwh} is below the last rated {last.total_kwh} kWh")
    # Rated after the last reading even when the clocks disagree.
    return MeterReading(max(now, last.read_at + timedelta(seconds=1)), final_kwh)


def carried_position(position: Position, *, start_kwh: Decimal, now: datetime) -> Position:
    """Return the new meter's position: its starting register, in the old meter's cycle.

    No ``opened``: the new meter's readings from before the swap are not this binding's,
    so one older than the starting register stays stale instead of extending it back.
    """
    return Position(
        last=MeterReading(now, start_kwh),
        cycle_start=position.cycle_start,
        cycle_energy=position.cycle_energy,
        segment_version=position.segment_version,
        segment_base=position.segment_base,
        segment_charged=position.segment_charged,
    )
