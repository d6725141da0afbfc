"""When a meter's supply is cut or restored, and why.

One pure decision per meter, from everything that bears on it. In order of precedence:

1. hold-power (保电) on the meter, one of its account's groups, or globally: never cut;
2. group load shedding (unless the account is protected): cut;
3. postpaid accounts: cut only when a bill is overdue on terms that say so (see
   ``billing.domain.postpaid``), otherwise never automatically;
4. prepaid accounts: cut when the balance is at or below ``trip_line - overdraft_limit``,
   except inside friendly hours, when a meter that is on stays on until the window ends
   (and a meter that is off stays off until a top-up), down to the friendly hours' debt
   ceiling: at or below ``cut line - friendly_debt_limit`` it is cut even then.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from decimal import Decimal
from typing import Literal

from prepaid_common.contracts.api.billing import FriendlyWindow, SitePolicy

__all__ = [
    "FriendlyWindow",
    "RelayAction",
    "SitePolicy",
    "Supply",
    "SupplyDecision",
    "SupplyInputs",
    "crossed_warning",
    "decide_supply",
    "expected_supply",
    "in_window",
    "is_friendly",
    "warning_settled",
]

Supply = Literal["on", "off"]
RelayAction = Literal["trip", "close"]


def in_window(window: FriendlyWindow, moment: time) -> bool:
    """Whether a local time falls inside a friendly window (which may wrap past midnight)."""
    if window.start <= window.end:
        return window.start <= moment < window.end
    return moment >= window.start or moment < window.end


def is_friendly(policy: SitePolicy, instant: datetime) -> bool:
    """Whether automatic cuts are suspended at this instant."""
    local = instant.astimezone(policy.zone)
    if local.weekday() in policy.friendly_weekdays or local.date() in policy.holidays:
        return True
    return any(in_window(window, local.time()) for window in policy.friendly_windows)


@dataclass(frozen=True)
class SupplyInputs:
    mode: Literal["prepaid", "postpaid"]
    balance: Decimal
    trip_line: Decimal
    overdraft_limit: Decimal
    current: Supply
    held: bool = False
    shed_by: str | None = None  # the group whose shedding applies, if any
    friendly: bool = False
    # How far below the cut line friendly hours let the balance fall (None: no ceiling).
    friendly_debt_limit: Decimal | None = None
    # A postpaid bill past its due day and grace, on terms that cut for it.
    overdue: bool = False


@dataclass(frozen=True)
class SupplyDecision:
    supply: Supply
    reason: str

    def action_from(self, current: Supply) -> RelayAction | None:
        """The relay action that moves a meter from ``current`` to this decision."""
        if self.supply == current:
            return None
        return "close" if self.supply == "on" else "trip"


def decide_supply(inputs: SupplyInputs) -> SupplyDecision:
    """Decide a meter's supply; the reason is recorded with every change."""
    if inputs.held:
        return SupplyDecision("on", "hold-power in force")
    if inputs.shed_by is not None:
        return SupplyDecision("off", f"load shedding of group {inputs.shed_by}")
    if inputs.mode == "postpaid" and inputs.overdue:
        return SupplyDecision("off", "postpaid bill overdue")
    if inputs.mode == "postpaid":
        return SupplyDecision("on", "postpaid account: no automatic cut")
    cut_line = inputs.trip_line - inputs.overdraft_limit
    if inputs.balance > cut_line:
        return SupplyDecision("on", f"balance {inputs.balance} above cut line {cut_line}")
    ceiling = None if inputs.friendly_debt_limit is None else cut_line - inputs.friendly_debt_limit
    if inputs.friendly and ceiling is not None and inputs.balance <= ceiling:
        return SupplyDecision(
            "off", f"balance {inputs.balance} at or below the friendly hours' ceiling {ceiling}"
        )
    if inputs.friendly:
        return SupplyDecision(
            inputs.current, f"balance {inputs.balance} short, but friendly hours: no change"
        )
    return SupplyDecision("off", f"balance {inputs.balance} at or below cut line {cut_line}")


def crossed_warning(*, balance: Decimal, warning_line: Decimal, warned: bool) -> bool | None:
    """Return True to raise a low-balance warning, False to re-arm it, None for no change."""
    if balance <= warning_line and not warned:
        return True
    if balance > warning_line and warned:
        return False
    return None


# --- the readings fast path -------------------------------------------------------------
# After a batch of readings, billing skips the accounts whose decision cannot change. These
# two restate decide_supply and crossed_warning for that test without building their inputs;
# tests/unit/billing/test_billing_supply_fast_path.py holds them equal.


def expected_supply(
    *, mode: str, balance: Decimal, trip_line: Decimal, overdraft_limit: Decimal
) -> Supply:
    """The supply ``decide_supply`` gives without holds, shedding or friendly hours."""
    return "on" if mode == "postpaid" or balance > trip_line - overdraft_limit else "off"


def warning_settled(*, balance: Decimal, warning_line: Decimal, warned: bool) -> bool:
    """Whether ``crossed_warning`` would leave the warning flag as it is."""
    return warned == (balance <= warning_line)
