"""Ledger postings balance; supply decisions follow the trip line."""

from __future__ import annotations

from decimal import Decimal

import pytest
from billing.domain import ledger
from billing.domain.supply import decide_supply
from hypothesis import given
from hypothesis import strategies as st

amounts = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("100000"), places=2)


@given(amount=amounts)
def test_every_builder_makes_a_balanced_transaction(amount: Decimal) -> None:
    charge = ledger.consumption_charge(
        account_id="A", meter_id="M", amount=amount, up_to_kwh=Decimal("1.5")
    )
    credit = ledger.top_up(
        account_id="A", payment_id="p", amount=amount, method="cash", reference="R"
    )
    for txn in (charge, credit):
        assert sum(e.amount for e in txn.entries) == 0
    assert charge.entries[0] == ledger.Entry("tenant:A", -amount)
    assert credit.entries[0] == ledger.Entry("tenant:A", amount)


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


def test_operation_keys_make_repeats_detectable() -> None:
    one = ledger.top_up(
        account_id="A", payment_id="p1", amount=Decimal(1), method="cash", reference="R"
    )
    two = ledger.top_up(
        account_id="A", payment_id="p1", amount=Decimal(1), method="cash", reference="R"
    )
    assert one.operation_key == two.operation_key == "payment:p1"


@pytest.mark.parametrize(
    ("supply", "balance", "expected"),
    [
        ("on", Decimal("0.01"), ("on", None)),
        ("on", Decimal("0.00"), ("off", "trip")),
        ("on", Decimal("-3.00"), ("off", "trip")),
        ("off", Decimal("0.00"), ("off", None)),
        ("off", Decimal("0.01"), ("on", "close")),
        ("on", Decimal("500"), ("on", None)),
    ],
)
def test_supply_follows_the_trip_line(
    supply: str, balance: Decimal, expected: tuple[str, str | None]
) -> None:
    new, action, reason = decide_supply(supply=supply, balance=balance, trip_line=Decimal("0.00"))  # type: ignore[arg-type]
    assert (new, action) == expected
    assert bool(reason) == (action is not None)
