"""Local-prepaid meters: purchase counts, and a meter's read-back held against the ledger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal

from billing.domain.local_credit import (
    MeterShows,
    Pushed,
    compare,
    credit_shows,
    next_purchase_count,
)
from hypothesis import given
from hypothesis import strategies as st

T0 = datetime(2026, 3, 1, 8, tzinfo=UTC)
TOLERANCE = Decimal("0.10")
FEN = Decimal("0.01")
BASELINE = MeterShows(count=4, credit=Decimal("10.00"), energy_kwh=Decimal("100.000"), read_at=T0)


def later(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def shows(count: int, credit: str, kwh: str = "100.000", minutes: int = 10) -> MeterShows:
    return MeterShows(count, Decimal(credit), Decimal(kwh), later(minutes))


def floor_fen(value: Decimal) -> Decimal:
    return value.quantize(FEN, rounding=ROUND_FLOOR)


def test_the_next_count_is_one_above_the_meter_and_every_count_given_out() -> None:
    assert next_purchase_count(4, []) == 5
    assert next_purchase_count(4, [5, 6]) == 7
    assert next_purchase_count(9, [5, 6]) == 10


def test_a_meter_that_took_every_confirmed_purchase_agrees() -> None:
    pushed = [Pushed(5, Decimal("50.00"), later(1)), Pushed(6, Decimal("20.00"), later(2))]
    result = compare(BASELINE, pushed, shows(6, "80.00"), price=None, tolerance=TOLERANCE)
    assert (result.count, result.credit) == (None, None)
    assert result.allowed_credit == Decimal("80.00")


def test_a_pushed_purchase_not_confirmed_yet_is_no_mismatch() -> None:
    pushed = [Pushed(5, Decimal("50.00"), later(1)), Pushed(6, Decimal("20.00"))]
    # The meter has not taken 6 yet, or has and nobody knows: both agree with the ledger.
    for meter in (shows(5, "60.00"), shows(6, "80.00")):
        result = compare(BASELINE, pushed, meter, price=None, tolerance=TOLERANCE)
        assert (result.count, result.credit) == (None, None)


def test_a_purchase_the_ledger_never_pushed_is_a_count_mismatch() -> None:
    pushed = [Pushed(5, Decimal("50.00"), later(1))]
    result = compare(BASELINE, pushed, shows(6, "60.00"), price=None, tolerance=TOLERANCE)
    assert result.count is not None
    assert result.count.kind == "purchase_count_mismatch"
    assert result.count.detail == (
        "meter shows purchase count 6; the ledger pushed up to 5 (1 purchase made elsewhere)"
    )
    # Nothing pushed since the baseline at all.
    lone = compare(BASELINE, [], shows(5, "10.00"), price=None, tolerance=TOLERANCE)
    assert lone.count is not None


def test_a_meter_below_a_confirmed_purchase_lost_one() -> None:
    pushed = [Pushed(5, Decimal("50.00"), later(1)), Pushed(6, Decimal("20.00"), later(2))]
    result = compare(BASELINE, pushed, shows(5, "60.00"), price=None, tolerance=TOLERANCE)
    assert result.count is not None
    assert result.count.detail == "meter shows purchase count 5; it had 6 already"
    reset = compare(BASELINE, [], shows(0, "0.00"), price=None, tolerance=TOLERANCE)
    assert reset.count is not None
    assert reset.count.detail == "meter shows purchase count 0; it had 4 already"


def test_a_reading_taken_before_the_confirmation_is_not_held_against_it() -> None:
    # Readings and outcomes travel on different queues: an older reading may come last.
    pushed = [Pushed(5, Decimal("50.00"), later(30))]
    result = compare(
        BASELINE, pushed, shows(4, "10.00", minutes=20), price=None, tolerance=TOLERANCE
    )
    assert result.count is None


def test_credit_from_nowhere_is_a_credit_mismatch() -> None:
    pushed = [Pushed(5, Decimal("50.00"), later(1))]
    result = compare(BASELINE, pushed, shows(5, "60.11"), price=None, tolerance=TOLERANCE)
    assert result.count is None
    assert result.credit is not None
    assert result.credit.kind == "local_credit_mismatch"
    assert result.credit.detail == (
        "meter shows 60.11 yuan of credit; the ledger allows at most 60.00 "
        "(purchases 50.00 since count 4, 0.00 used)"
    )
    within = compare(BASELINE, pushed, shows(5, "60.10"), price=None, tolerance=TOLERANCE)
    assert within.credit is None


def test_energy_used_since_the_baseline_lowers_what_the_meter_may_show() -> None:
    pushed = [Pushed(5, Decimal("50.00"), later(1))]
    meter = shows(5, "55.00", kwh="110.000")  # 10 kWh at 1.50: 15.00 used, 45.00 left
    result = compare(BASELINE, pushed, meter, price=Decimal("1.5000"), tolerance=TOLERANCE)
    assert result.allowed_credit == Decimal("45.00")
    assert result.credit is not None
    assert "15.00 used" in result.credit.detail
    # Without a price the check cannot know what was used, and allows it.
    assert compare(BASELINE, pushed, meter, price=None, tolerance=TOLERANCE).credit is None


def test_credit_below_the_ledger_is_a_mismatch_where_the_price_is_known() -> None:
    pushed = [Pushed(5, Decimal("50.00"), later(1))]
    # 10 kWh at 1.50 used: 45.00 expected; 44.90 is within the tolerance, 44.89 is not.
    within = shows(5, "44.90", kwh="110.000")
    assert (
        compare(BASELINE, pushed, within, price=Decimal("1.5"), tolerance=TOLERANCE).credit is None
    )
    short = compare(
        BASELINE,
        pushed,
        shows(5, "44.89", kwh="110.000"),
        price=Decimal("1.5"),
        tolerance=TOLERANCE,
    )
    assert short.credit is not None
    assert short.credit.detail == (
        "meter shows 44.89 yuan of credit; the ledger expects 45.00 "
        "(purchases 50.00 since count 4, 15.00 used), 0.11 missing"
    )
    # Without a price, what was used is unknown: less credit is no mismatch.
    meter = shows(5, "1.00", kwh="110.000")
    assert compare(BASELINE, pushed, meter, price=None, tolerance=TOLERANCE).credit is None


def test_the_credit_shows_a_purchase_only_if_its_money_is_there() -> None:
    before = shows(4, "10.00", kwh="100.000", minutes=5)
    ours = [Pushed(5, Decimal("20.00"))]
    price = Decimal("1.5")
    # Ours: +20.00, less 2 kWh at 1.50 used since the reading before.
    took_ours = shows(5, "27.00", kwh="102.000")
    assert credit_shows(before, ours, took_ours, price=price, tolerance=TOLERANCE)
    # Count 5 taken by a purchase of 3.00 made elsewhere: the count moved, the money did not.
    elsewhere = shows(5, "10.00", kwh="102.000")
    assert not credit_shows(before, ours, elsewhere, price=price, tolerance=TOLERANCE)
    # Judged from the reading before, not the baseline: a meter already short stays judged
    # on this step alone.
    drifted = shows(4, "4.00", kwh="100.000", minutes=5)
    assert credit_shows(
        drifted, ours, shows(5, "21.00", kwh="102.000"), price=price, tolerance=TOLERANCE
    )


def test_only_purchases_the_meter_counts_are_in_its_credit() -> None:
    pushed = [Pushed(5, Decimal("50.00"), later(1)), Pushed(6, Decimal("20.00"))]
    # Count 5 with the credit of both: 6 was not taken, so its 20.00 cannot be there.
    result = compare(BASELINE, pushed, shows(5, "80.00"), price=None, tolerance=TOLERANCE)
    assert result.credit is not None


def test_a_count_that_agrees_with_the_ledger_confirms_the_purchases_it_includes() -> None:
    pushed = [Pushed(5, Decimal("50.00"), later(1)), Pushed(6, Decimal("20.00"))]
    result = compare(BASELINE, pushed, shows(6, "80.00"), price=None, tolerance=TOLERANCE)
    assert (result.confirms(5), result.confirms(6)) == (True, True)
    behind = compare(BASELINE, pushed, shows(5, "60.00"), price=None, tolerance=TOLERANCE)
    assert (behind.confirms(5), behind.confirms(6)) == (True, False)


def test_a_meter_ahead_of_the_ledger_confirms_nothing() -> None:
    # Charged by someone else to count 7: its count says nothing about purchase 6 (in flight).
    pushed = [Pushed(5, Decimal("50.00"), later(1)), Pushed(6, Decimal("20.00"))]
    result = compare(BASELINE, pushed, shows(7, "80.00"), price=None, tolerance=TOLERANCE)
    assert result.count is not None
    assert not result.confirms(6)


amounts = st.lists(st.integers(min_value=1, max_value=100_000), min_size=0, max_size=8)
kwh = st.integers(min_value=0, max_value=10_000_000)  # Wh
prices = st.integers(min_value=0, max_value=50_000)  # 0.0001 yuan: up to 5 yuan/kWh


@given(
    baseline_wh=kwh,
    baseline_credit=st.integers(min_value=-100_000, max_value=10_000_000),
    fen=amounts,
    taken=st.integers(min_value=0, max_value=8),
    used_wh=kwh,
    price=prices,
    confirmed=st.booleans(),
)
def test_an_honest_meter_is_never_flagged(
    baseline_wh: int,
    baseline_credit: int,
    fen: list[int],
    taken: int,
    used_wh: int,
    price: int,
    confirmed: bool,
) -> None:
    """A meter that takes the pushed purchases in order and debits its own price agrees with
    the ledger, whatever its display truncates (credit and energy to 0.01)."""
    unit_price = Decimal(price).scaleb(-4)
    taken = min(taken, len(fen))
    # The meter's true state, and what its registers show (truncated to hundredths).
    true_kwh = Decimal(baseline_wh).scaleb(-3)
    true_credit = Decimal(baseline_credit).scaleb(-3)
    baseline = MeterShows(4, floor_fen(true_credit), floor_fen(true_kwh), T0)
    pushed = [
        Pushed(5 + i, Decimal(f).scaleb(-2), later(i + 1) if confirmed and i < taken else None)
        for i, f in enumerate(fen)
    ]
    used = Decimal(used_wh).scaleb(-3)
    credit_now = true_credit + sum((p.amount for p in pushed[:taken]), Decimal(0))
    credit_now -= used * unit_price
    meter = MeterShows(
        4 + taken, floor_fen(credit_now), floor_fen(true_kwh + used), later(len(fen) + 10)
    )
    result = compare(baseline, pushed, meter, price=unit_price, tolerance=TOLERANCE)
    assert (result.count, result.credit) == (None, None)


@given(
    fen=amounts,
    used_wh=kwh,
    price=prices,
    extra=st.integers(min_value=11, max_value=10_000_000),
)
def test_credit_beyond_the_tolerance_is_always_flagged(
    fen: list[int], used_wh: int, price: int, extra: int
) -> None:
    unit_price = Decimal(price).scaleb(-4)
    pushed = [Pushed(5 + i, Decimal(f).scaleb(-2), later(i + 1)) for i, f in enumerate(fen)]
    used = Decimal(used_wh).scaleb(-3)
    allowed = BASELINE.credit + sum((p.amount for p in pushed), Decimal(0)) - used * unit_price
    cheat = MeterShows(
        4 + len(fen),
        floor_fen(allowed) + Decimal(extra).scaleb(-2),
        BASELINE.energy_kwh + used,
        later(100),
    )
    result = compare(BASELINE, pushed, cheat, price=unit_price, tolerance=TOLERANCE)
    assert result.count is None
    assert result.credit is not None
    assert result.allowed_credit == allowed


@given(
    fen=amounts,
    used_wh=kwh,
    price=st.integers(min_value=1, max_value=50_000),
    missing=st.integers(min_value=11, max_value=10_000_000),
)
def test_credit_short_beyond_the_tolerance_is_always_flagged_where_the_price_is_known(
    fen: list[int], used_wh: int, price: int, missing: int
) -> None:
    unit_price = Decimal(price).scaleb(-4)
    pushed = [Pushed(5 + i, Decimal(f).scaleb(-2), later(i + 1)) for i, f in enumerate(fen)]
    used = Decimal(used_wh).scaleb(-3)
    allowed = BASELINE.credit + sum((p.amount for p in pushed), Decimal(0)) - used * unit_price
    short = MeterShows(
        4 + len(fen),
        floor_fen(allowed) - Decimal(missing).scaleb(-2),
        BASELINE.energy_kwh + used,
        later(100),
    )
    result = compare(BASELINE, pushed, short, price=unit_price, tolerance=TOLERANCE)
    assert result.count is None
    assert result.credit is not None
    assert "missing" in result.credit.detail
