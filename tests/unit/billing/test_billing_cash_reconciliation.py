"""The sales report's cash against the cashiers' shifts (billing.store.sales.reconcile): which
shift a cash movement belongs to, at the edges of a shift, and a shift whose recorded cash
the ledger no longer agrees with."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from billing.store.sales import CashMovement, reconcile
from prepaid_common.contracts.api.site_office import ShiftView

DAY = datetime(2026, 3, 10, 0, 0, tzinfo=UTC)  # the span starts here


def shift(
    cashier: str, opened: datetime | None, closed: datetime, expected: str, counted: str
) -> ShiftView:
    return ShiftView(
        id=f"{cashier}-{closed.isoformat()}",
        cashier=cashier,
        opened_at=opened,
        closed_at=closed,
        top_ups=1,
        cash_in=Decimal(expected),
        refunds=0,
        cash_out=Decimal("0.00"),
        expected_cash=Decimal(expected),
        counted_cash=Decimal(counted),
        difference=Decimal(counted) - Decimal(expected),
        note="",
    )


def cash(at: datetime, operator: str, amount: str, kind: str = "top_up") -> CashMovement:
    return CashMovement(created_at=at, operator=operator, kind=kind, cash=Decimal(amount))


def test_each_movement_is_in_its_cashiers_shift_or_not_yet_closed() -> None:
    first_close = DAY + timedelta(hours=12)
    second_close = DAY + timedelta(hours=18)
    shifts = [
        # Wang's first shift opened the day before: 30.00 of it was taken then.
        shift("wang", DAY - timedelta(hours=3), first_close, "90.00", "80.00"),
        shift("wang", first_close, second_close, "25.00", "25.00"),
    ]
    movements = [
        cash(DAY + timedelta(hours=1), "wang", "50.00"),
        cash(first_close, "wang", "10.00"),  # at the close itself: still that shift's
        cash(first_close + timedelta(seconds=1), "wang", "35.00"),
        cash(first_close + timedelta(hours=1), "wang", "-10.00", kind="refund"),
        cash(second_close + timedelta(seconds=1), "wang", "5.00"),  # after the last close
        cash(DAY + timedelta(hours=2), "li", "20.00"),  # Li closed nothing
        cash(DAY + timedelta(hours=3), "admin", "-50.00", kind="reversal"),
    ]
    counter = sum((m.cash for m in movements), Decimal("0.00"))
    result = reconcile(shifts, movements, counter_cash=counter, before_span=Decimal("30.00"))
    assert result.agrees
    assert (result.expected_cash, result.counted_cash, result.difference) == (
        Decimal("115.00"),
        Decimal("105.00"),
        Decimal("-10.00"),
    )
    assert (result.not_yet_closed, result.outside_shifts) == (Decimal("25.00"), Decimal("-50.00"))
    assert result.counter_cash == (
        result.expected_cash - result.before_span + result.not_yet_closed + result.outside_shifts
    )
    [wang] = result.by_cashier
    assert (wang.cashier, wang.shifts, wang.difference) == ("wang", 2, Decimal("-10.00"))


def test_a_shift_whose_cash_the_ledger_no_longer_holds_is_a_disagreement() -> None:
    close = DAY + timedelta(hours=12)
    # A top-up posted after the close, dated inside the shift (a race with the close): the
    # shift recorded 50.00, the ledger now holds 60.00 in its time.
    shifts = [shift("wang", None, close, "50.00", "50.00")]
    movements = [
        cash(DAY + timedelta(hours=1), "wang", "50.00"),
        cash(close - timedelta(seconds=1), "wang", "10.00"),
    ]
    result = reconcile(
        shifts, movements, counter_cash=Decimal("60.00"), before_span=Decimal("0.00")
    )
    assert not result.agrees
    assert result.not_yet_closed == Decimal("0.00")


def test_a_movement_at_a_close_is_that_shifts_not_the_next_ones() -> None:
    close = DAY + timedelta(hours=6)
    shifts = [
        shift("wang", None, close, "15.00", "15.00"),
        shift("wang", close, DAY + timedelta(hours=12), "40.00", "40.00"),
    ]
    movements = [
        cash(close, "wang", "15.00"),
        cash(close + timedelta(microseconds=1), "wang", "40.00"),
    ]
    result = reconcile(
        shifts, movements, counter_cash=Decimal("55.00"), before_span=Decimal("0.00")
    )
    assert result.agrees
    assert result.not_yet_closed == Decimal("0.00")
    # Had the first close not been in the span, its cash would not be in a closed shift.
    alone = reconcile(
        shifts[1:], movements, counter_cash=Decimal("55.00"), before_span=Decimal("0.00")
    )
    assert (alone.agrees, alone.not_yet_closed) == (True, Decimal("15.00"))
