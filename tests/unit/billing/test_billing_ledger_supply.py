"""Ledger postings balance; supply decisions follow credit, holds, shedding and the calendar."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import Decimal

import pytest
from billing.domain import ledger
from billing.domain.supply import (
    FriendlyWindow,
    SitePolicy,
    SupplyInputs,
    crossed_warning,
    decide_supply,
    is_friendly,
)
from hypothesis import given
from hypothesis import strategies as st

amounts = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("100000"), places=2)
shares = st.decimals(min_value=Decimal(0), max_value=Decimal(1), places=4)


@given(amount=amounts, owed=amounts, share=shares)
def test_every_builder_makes_a_balanced_transaction(
    amount: Decimal, owed: Decimal, share: Decimal
) -> None:
    built = [
        ledger.consumption_charge(account_id="A", meter_id="M", amount=amount, position_key="k"),
        ledger.top_up(account_id="A", payment_id="p", amount=amount, method="cash", reference="R"),
        ledger.top_up(
            account_id="A",
            payment_id="p",
            amount=amount,
            method="cash",
            reference="R",
            owed=owed,
            debt_share=share,
        ),
        ledger.fixed_charge(account_id="A", amount=amount, period="2026-01-01", what="daily"),
        ledger.record_arrears(account_id="A", amount=amount, key="k", reason="r", operator="o"),
        ledger.daily_debt_recovery(account_id="A", amount=amount, day="2026-01-01"),
        ledger.refund(
            account_id="A", amount=amount, method="cash", key="k", reason="r", operator="o"
        ),
    ]
    for txn in built:
        assert sum(e.amount for e in txn.entries) == 0
        undo = ledger.reversal(txn, original_id="t1", reason="mistake", operator="o")
        assert all(
            a.amount == -b.amount and a.ledger_account == b.ledger_account
            for a, b in zip(undo.entries, txn.entries, strict=True)
        )
        assert undo.operation_key == "reversal:t1"


@given(amount=amounts, owed=amounts, share=shares)
def test_debt_share_of_a_top_up_never_exceeds_the_debt_or_the_share(
    amount: Decimal, owed: Decimal, share: Decimal
) -> None:
    txn = ledger.top_up(
        account_id="A",
        payment_id="p",
        amount=amount,
        method="cash",
        reference="R",
        owed=owed,
        debt_share=share,
    )
    recovered = txn.amount_for(ledger.arrears_ledger("A"))
    assert 0 <= recovered <= owed
    assert recovered <= (amount * share).quantize(Decimal("0.01")) + Decimal("0.01")
    assert txn.amount_for(ledger.tenant_ledger("A")) + recovered == amount


def test_unbalanced_or_sub_fen_transactions_are_refused() -> None:
    with pytest.raises(ValueError, match="unbalanced"):
        ledger.Transaction("k", "x", "A", "", (ledger.Entry("a", Decimal("1.00")),))
    with pytest.raises(ValueError, match="sub-fen"):
        ledger.Transaction(
            "k",
            "x",
            "A",
            "",
            (ledger.Entry("a", Decimal("0.001")), ledger.Entry("b", Decimal("-0.001"))),
        )


def inputs(**overrides: object) -> SupplyInputs:
    base: dict[str, object] = {
        "mode": "prepaid",
        "balance": Decimal("5.00"),
        "trip_line": Decimal("0.00"),
        "overdraft_limit": Decimal("0.00"),
        "current": "on",
    }
    return SupplyInputs(**(base | overrides))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, "on"),
        ({"balance": Decimal("0.00")}, "off"),
        ({"balance": Decimal("-3.00"), "overdraft_limit": Decimal("5.00")}, "on"),
        ({"balance": Decimal("-5.00"), "overdraft_limit": Decimal("5.00")}, "off"),
        ({"balance": Decimal("-50"), "held": True}, "on"),
        ({"shed_by": "building:A"}, "off"),
        ({"shed_by": "building:A", "held": True}, "on"),
        ({"balance": Decimal("-50"), "mode": "postpaid"}, "on"),
        ({"balance": Decimal("-1"), "friendly": True}, "on"),
        ({"balance": Decimal("-1"), "friendly": True, "current": "off"}, "off"),
        ({"balance": Decimal("0.01"), "current": "off"}, "on"),
    ],
)
def test_supply_decisions(overrides: dict[str, object], expected: str) -> None:
    decision = decide_supply(inputs(**overrides))
    assert decision.supply == expected
    assert decision.reason


def test_action_follows_the_change() -> None:
    off = decide_supply(inputs(balance=Decimal(0)))
    assert off.action_from("on") == "trip"
    assert off.action_from("off") is None
    assert decide_supply(inputs()).action_from("off") == "close"


def test_friendly_hours_wrap_midnight_and_cover_rest_days_and_holidays() -> None:
    policy = SitePolicy(
        friendly_windows=[FriendlyWindow(start=time(20), end=time(8))],
        friendly_weekdays=[6],
        holidays=[date(2026, 10, 1)],
    )
    shanghai = lambda *a: datetime(*a, tzinfo=policy.zone)  # noqa: E731
    assert is_friendly(policy, shanghai(2026, 3, 10, 22, 0))
    assert is_friendly(policy, shanghai(2026, 3, 10, 7, 59))
    assert not is_friendly(policy, shanghai(2026, 3, 10, 8, 0))
    assert not is_friendly(policy, shanghai(2026, 3, 10, 12, 0))
    assert is_friendly(policy, shanghai(2026, 3, 15, 12, 0))  # a Sunday
    assert is_friendly(policy, shanghai(2026, 10, 1, 12, 0))
    # 12:00 UTC is 20:00 in Shanghai.
    assert is_friendly(policy, datetime(2026, 3, 10, 12, 0, tzinfo=UTC))


def test_low_balance_warning_fires_once_and_rearms() -> None:
    assert crossed_warning(balance=Decimal(5), warning_line=Decimal(10), warned=False) is True
    assert crossed_warning(balance=Decimal(4), warning_line=Decimal(10), warned=True) is None
    assert crossed_warning(balance=Decimal(11), warning_line=Decimal(10), warned=True) is False
    assert crossed_warning(balance=Decimal(11), warning_line=Decimal(10), warned=False) is None
