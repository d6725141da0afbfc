"""The readings fast path restates the supply and warning rules: held equal to them here."""

from __future__ import annotations

from decimal import Decimal

from billing.domain.supply import (
    SupplyInputs,
    crossed_warning,
    decide_supply,
    expected_supply,
    warning_settled,
)
from hypothesis import given
from hypothesis import strategies as st

money = st.decimals(min_value=Decimal("-1000"), max_value=Decimal("1000"), places=2)
limits = st.decimals(min_value=Decimal(0), max_value=Decimal("500"), places=2)
modes = st.sampled_from(["prepaid", "postpaid"])
supplies = st.sampled_from(["on", "off"])


@given(mode=modes, balance=money, trip_line=money, overdraft=limits, current=supplies)
def test_expected_supply_is_decide_supply_without_holds_shedding_or_friendly_hours(
    mode: str, balance: Decimal, trip_line: Decimal, overdraft: Decimal, current: str
) -> None:
    decided = decide_supply(
        SupplyInputs(
            mode=mode,  # type: ignore[arg-type]
            balance=balance,
            trip_line=trip_line,
            overdraft_limit=overdraft,
            current=current,  # type: ignore[arg-type]
        )
    )
    fast = expected_supply(
        mode=mode, balance=balance, trip_line=trip_line, overdraft_limit=overdraft
    )
    assert fast == decided.supply


@given(balance=money, warning_line=money, warned=st.booleans())
def test_warning_settled_is_crossed_warning_leaving_the_flag(
    balance: Decimal, warning_line: Decimal, warned: bool
) -> None:
    assert warning_settled(balance=balance, warning_line=warning_line, warned=warned) == (
        crossed_warning(balance=balance, warning_line=warning_line, warned=warned) is None
    )


def test_the_cut_line_itself_is_off_and_a_fen_above_is_on() -> None:
    terms = {"mode": "prepaid", "trip_line": Decimal("5.00"), "overdraft_limit": Decimal("2.00")}
    assert expected_supply(balance=Decimal("3.00"), **terms) == "off"  # type: ignore[arg-type]
    assert expected_supply(balance=Decimal("3.01"), **terms) == "on"  # type: ignore[arg-type]
