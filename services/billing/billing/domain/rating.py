"""Rating consumption from cumulative energy registers.

A meter's register only ever grows. Billing keeps, per meter binding, the register value
it started from and the cumulative charge for everything since then. A new reading moves
the position forward; its charge is ``cumulative_charge(new) - cumulative_charge(old)``, so
the total charged is the same whether the energy arrives as one reading or as many, in any
order, with duplicates (splitting invariance).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from billing.domain.money import round_money

# The most a meter could physically measure per hour; above it a jump is a bad frame or
# the wrong meter answering, not consumption.
DEFAULT_MAX_POWER_KW = Decimal(1000)


@dataclass(frozen=True)
class FlatTariff:
    """One price per kWh."""

    price_per_kwh: Decimal

    def cumulative_charge(self, energy_kwh: Decimal) -> Decimal:
        """Return the charge for ``energy_kwh`` consumed since the position's start."""
        return round_money(energy_kwh * self.price_per_kwh)


@dataclass(frozen=True)
class Position:
    """Where a meter binding stands: register at start, last register rated, total charged."""

    start_kwh: Decimal | None
    last_kwh: Decimal | None
    last_read_at: datetime | None
    charged: Decimal


class Verdict(StrEnum):
    CHARGE = "charge"
    FIRST = "first"  # the first reading fixes the start; nothing to charge
    STALE = "stale"  # late or duplicate: the position is already past it
    BACKWARDS = "register_backwards"
    IMPLAUSIBLE = "implausible_jump"


@dataclass(frozen=True)
class Rating:
    """What one reading does to a position."""

    verdict: Verdict
    position: Position
    charge: Decimal
    detail: str = ""


def rate_reading(
    tariff: FlatTariff,
    position: Position,
    *,
    energy_kwh: Decimal,
    read_at: datetime,
    max_power_kw: Decimal = DEFAULT_MAX_POWER_KW,
) -> Rating:
    """Rate one cumulative reading against a position."""
    zero = Decimal("0.00")
    if position.start_kwh is None or position.last_kwh is None or position.last_read_at is None:
        start = Position(energy_kwh, energy_kwh, read_at, zero)
        return Rating(Verdict.FIRST, start, zero)
    if read_at <= position.last_read_at:
        return Rating(Verdict.STALE, position, zero)
    if energy_kwh < position.last_kwh:
        return Rating(
            Verdict.BACKWARDS,
            position,
            zero,
            f"register fell from {position.last_kwh} to {energy_kwh} kWh",
        )
    hours = Decimal((read_at - position.last_read_at).total_seconds()) / Decimal(3600)
    if energy_kwh - position.last_kwh > max_power_kw * hours + Decimal("0.01"):
        return Rating(
            Verdict.IMPLAUSIBLE,
            position,
            zero,
            f"{energy_kwh - position.last_kwh} kWh in {hours:.4f} h exceeds {max_power_kw} kW",
        )
    charged = tariff.cumulative_charge(energy_kwh - position.start_kwh)
    moved = Position(position.start_kwh, energy_kwh, read_at, charged)
    return Rating(Verdict.CHARGE, moved, charged - position.charged)
