"""Counter top-up rules."""

from __future__ import annotations

from decimal import Decimal

import pytest
from payments import domain
from prepaid_common.errors import Conflict, Invalid


@pytest.mark.parametrize("amount", ["0", "-1", "0.001", "12.345", "NaN", "Infinity"])
def test_bad_amounts_are_refused(amount: str) -> None:
    with pytest.raises(Invalid):
        domain.validate_amount(Decimal(amount))


@pytest.mark.parametrize("amount", ["0.01", "50", "50.00", "99999.99"])
def test_good_amounts_pass(amount: str) -> None:
    assert domain.validate_amount(Decimal(amount)) == Decimal(amount)


def test_receipt_is_trimmed_and_bounded() -> None:
    assert domain.validate_receipt("  R-1 ") == "R-1"
    with pytest.raises(Invalid):
        domain.validate_receipt("   ")
    with pytest.raises(Invalid):
        domain.validate_receipt("x" * 65)


def test_a_receipt_replayed_with_other_terms_is_a_conflict() -> None:
    top_up = domain.CounterTopUp("A1", Decimal("10.00"), "R-1", "op")
    domain.check_replay("A1", Decimal("10.00"), top_up)
    with pytest.raises(Conflict):
        domain.check_replay("A1", Decimal("11.00"), top_up)
    with pytest.raises(Conflict):
        domain.check_replay("A2", Decimal("10.00"), top_up)
