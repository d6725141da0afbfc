"""When a tenant's supply is cut or restored."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

Supply = Literal["on", "off"]
RelayAction = Literal["trip", "close"]


def decide_supply(
    *, supply: Supply, balance: Decimal, trip_line: Decimal
) -> tuple[Supply, RelayAction | None, str]:
    """Return the new supply state, the relay action it needs (if any) and the reason."""
    if supply == "on" and balance <= trip_line:
        return "off", "trip", f"balance {balance} at or below trip line {trip_line}"
    if supply == "off" and balance > trip_line:
        return "on", "close", f"balance {balance} above trip line {trip_line}"
    return supply, None, ""
