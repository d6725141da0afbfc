"""Account and money rules: amount due, the balance cap, refunds, reversals, tariff versions,
meter swaps, and the PATCH terms each written to their column."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from billing.domain import ledger
from billing.domain.accounts import amount_due, ensure_top_up_fits, lifts_above_cap
from billing.domain.meter_swap import carried_position, final_reading
from billing.domain.rating import MeterReading, Position
from billing.domain.tariffs import BEGINNING, PeriodEnergy, version_effective_from
from billing.store.accounts import TERM_COLUMNS
from hypothesis import given
from hypothesis import strategies as st
from prepaid_common.contracts.api.billing import AccountChanges
from prepaid_common.errors import Conflict, Invalid

money = st.decimals(min_value=Decimal("-100000"), max_value=Decimal("100000"), places=2)
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


# --- amount due ----------------------------------------------------------------------------
@given(balance=money, arrears=money)
def test_amount_due_is_what_is_negative_of_balance_and_arrears(
    balance: Decimal, arrears: Decimal
) -> None:
    due = amount_due(balance=balance, arrears=arrears)
    assert due >= 0
    assert due == max(-balance, Decimal(0)) + max(-arrears, Decimal(0))
    assert due.as_tuple().exponent == -2


def test_amount_due_examples() -> None:
    assert amount_due(balance=Decimal("66.35"), arrears=Decimal("-10.00")) == Decimal("10.00")
    assert amount_due(balance=Decimal("-20.00"), arrears=Decimal("0.00")) == Decimal("20.00")
    assert amount_due(balance=Decimal("-1.50"), arrears=Decimal("-2.25")) == Decimal("3.75")
    assert str(amount_due(balance=Decimal(5), arrears=Decimal(0))) == "0.00"


# --- the balance cap -----------------------------------------------------------------------
def test_the_cap_allows_a_top_up_up_to_it_and_refuses_a_fen_more() -> None:
    cap = Decimal("100.00")
    ensure_top_up_fits(balance=Decimal("80.00"), amount=Decimal("20.00"), cap=cap)
    with pytest.raises(Conflict, match=re.escape("exceed the account's cap of 100.00")):
        ensure_top_up_fits(balance=Decimal("80.00"), amount=Decimal("20.01"), cap=cap)
    # No cap: anything goes.
    ensure_top_up_fits(balance=Decimal("1e9"), amount=Decimal("1e9"), cap=None)


@given(balance=money, amount=money.filter(lambda a: a > 0))
def test_a_payment_lifts_above_the_cap_exactly_when_a_top_up_is_refused(
    balance: Decimal, amount: Decimal
) -> None:
    cap = Decimal("500.00")
    refused = False
    try:
        ensure_top_up_fits(balance=balance, amount=amount, cap=cap)
    except Conflict:
        refused = True
    assert lifts_above_cap(balance=balance, amount=amount, cap=cap) == refused
    assert not lifts_above_cap(balance=balance, amount=amount, cap=None)


# --- refunds and reversals -----------------------------------------------------------------
def refund(amount: str) -> ledger.Transaction:
    return ledger.refund(
        account_id="A1", amount=Decimal(amount), method="cash", key="k", reason="r", operator="o"
    )


def test_a_refund_may_take_the_whole_balance_but_not_more() -> None:
    ledger.ensure_refund_covered(refund("20.00"), balance=Decimal("20.00"))
    with pytest.raises(Invalid, match=re.escape("refund 20.01 exceeds the balance 20.00")):
        ledger.ensure_refund_covered(refund("20.01"), balance=Decimal("20.00"))


def test_only_refunds_are_held_to_the_balance() -> None:
    arrears = ledger.record_arrears(
        account_id="A1", amount=Decimal("50.00"), key="k", reason="r", operator="o"
    )
    ledger.ensure_refund_covered(arrears, balance=Decimal("0.00"))


def test_a_reversal_cannot_be_reversed() -> None:
    ledger.ensure_reversible("refund")
    ledger.ensure_reversible("top_up")
    with pytest.raises(Invalid, match="a reversal cannot itself be reversed"):
        ledger.ensure_reversible("reversal")


# --- tariff versions -----------------------------------------------------------------------
def test_a_new_tariff_applies_from_the_beginning_unless_told() -> None:
    assert version_effective_from(tariff_exists=False, requested=None, now=NOW) == BEGINNING
    past = NOW - timedelta(days=30)
    assert version_effective_from(tariff_exists=False, requested=past, now=NOW) == past


def test_a_later_version_starts_now_or_ahead_never_in_the_past() -> None:
    assert version_effective_from(tariff_exists=True, requested=None, now=NOW) == NOW
    ahead = NOW + timedelta(days=1)
    assert version_effective_from(tariff_exists=True, requested=ahead, now=NOW) == ahead
    # A request sent a little late is still "now".
    late = NOW - timedelta(minutes=4)
    assert version_effective_from(tariff_exists=True, requested=late, now=NOW) == late
    with pytest.raises(Invalid, match="cannot take effect in the past"):
        version_effective_from(tariff_exists=True, requested=NOW - timedelta(minutes=6), now=NOW)


# --- meter swaps ---------------------------------------------------------------------------
RATED = Position(
    last=MeterReading(NOW, Decimal("1000.000")),
    cycle_start=datetime(2026, 3, 1, tzinfo=UTC),
    cycle_energy=PeriodEnergy(flat=Decimal("120")),
    segment_version="v1",
    segment_base=PeriodEnergy(flat=Decimal("20")),
    segment_charged=Decimal("80.00"),
)


def test_the_final_reading_may_not_fall_below_the_last_rated() -> None:
    with pytest.raises(
        Invalid, match=re.escape("final reading 999.999 is below the last rated 1000.000")
    ):
        final_reading(RATED, final_kwh=Decimal("999.999"), now=NOW + timedelta(hours=1))
    same = final_reading(RATED, final_kwh=Decimal("1000.000"), now=NOW + timedelta(hours=1))
    assert same.total_kwh == Decimal("1000.000")


def test_the_final_reading_is_rated_after_the_last_even_when_the_clock_lags() -> None:
    lagging = final_reading(RATED, final_kwh=Decimal("1012"), now=NOW - timedelta(minutes=5))
    assert lagging.read_at == NOW + timedelta(seconds=1)
    later = NOW + timedelta(hours=2)
    assert final_reading(RATED, final_kwh=Decimal("1012"), now=later).read_at == later


def test_the_new_meter_continues_the_old_ones_cycle_from_its_own_register() -> None:
    swapped_at = NOW + timedelta(hours=2)
    carried = carried_position(RATED, start_kwh=Decimal("3.5"), now=swapped_at)
    assert carried.last == MeterReading(swapped_at, Decimal("3.5"))
    assert carried.cycle_start == RATED.cycle_start
    assert carried.cycle_energy == RATED.cycle_energy  # tiers keep counting
    assert carried.segment_version == RATED.segment_version
    assert carried.segment_base == RATED.segment_base
    assert carried.segment_charged == RATED.segment_charged


# --- PATCH /accounts -----------------------------------------------------------------------
def test_every_account_term_a_patch_may_change_is_written_to_its_own_column() -> None:
    terms = set(AccountChanges.model_fields) - {"groups"}
    assert set(TERM_COLUMNS) == terms
    assert all(column.name == field for field, column in TERM_COLUMNS.items())
