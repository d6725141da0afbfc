"""Rating rules, including splitting invariance proved over random splits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from billing.domain.money import round_money
from billing.domain.rating import FlatTariff, Position, Verdict, rate_reading
from hypothesis import given
from hypothesis import strategies as st

T0 = datetime(2026, 1, 1, tzinfo=UTC)
EMPTY = Position(None, None, None, Decimal("0.00"))

prices = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("9.9999"), places=4)
energies = st.decimals(min_value=Decimal("0"), max_value=Decimal("50"), places=3)


def feed(tariff: FlatTariff, readings: list[tuple[datetime, Decimal]]) -> tuple[Position, Decimal]:
    position, total = EMPTY, Decimal("0.00")
    for read_at, kwh in readings:
        rating = rate_reading(tariff, position, energy_kwh=kwh, read_at=read_at)
        position = rating.position
        total += rating.charge
    return position, total


def test_round_money_is_half_up_to_the_fen() -> None:
    assert round_money(Decimal("0.005")) == Decimal("0.01")
    assert round_money(Decimal("0.0049")) == Decimal("0.00")
    assert round_money(Decimal("2.675")) == Decimal("2.68")


def test_first_reading_fixes_the_start_and_charges_nothing() -> None:
    rating = rate_reading(FlatTariff(Decimal("1")), EMPTY, energy_kwh=Decimal("100"), read_at=T0)
    assert rating.verdict is Verdict.FIRST
    assert rating.charge == 0
    assert rating.position.start_kwh == Decimal("100")


def test_charge_is_the_difference_of_cumulative_charges() -> None:
    tariff = FlatTariff(Decimal("0.3333"))
    _, total = feed(
        tariff,
        [
            (T0, Decimal("10")),
            (T0 + timedelta(minutes=1), Decimal("10.001")),
            (T0 + timedelta(minutes=2), Decimal("10.002")),
            (T0 + timedelta(minutes=3), Decimal("13")),
        ],
    )
    # Each step alone rounds to 0.00, but the cumulative position 3 kWh costs 1.00 exactly.
    assert total == round_money(Decimal(3) * Decimal("0.3333")) == Decimal("1.00")


def test_stale_and_duplicate_readings_change_nothing() -> None:
    tariff = FlatTariff(Decimal("1.5"))
    position, _ = feed(tariff, [(T0, Decimal("1")), (T0 + timedelta(hours=1), Decimal("3"))])
    again = rate_reading(tariff, position, energy_kwh=Decimal("3"), read_at=T0 + timedelta(hours=1))
    late = rate_reading(
        tariff, position, energy_kwh=Decimal("2"), read_at=T0 + timedelta(minutes=30)
    )
    assert again.verdict is late.verdict is Verdict.STALE
    assert again.charge == late.charge == 0
    assert again.position == late.position == position


def test_register_going_backwards_is_an_anomaly_not_a_credit() -> None:
    tariff = FlatTariff(Decimal("1"))
    position, _ = feed(tariff, [(T0, Decimal("50")), (T0 + timedelta(hours=1), Decimal("51"))])
    rating = rate_reading(
        tariff, position, energy_kwh=Decimal("3"), read_at=T0 + timedelta(hours=2)
    )
    assert rating.verdict is Verdict.BACKWARDS
    assert rating.charge == 0
    assert rating.position == position


def test_impossible_jump_is_an_anomaly() -> None:
    tariff = FlatTariff(Decimal("1"))
    position, _ = feed(tariff, [(T0, Decimal("0"))])
    rating = rate_reading(
        tariff,
        position,
        energy_kwh=Decimal("5000"),
        read_at=T0 + timedelta(minutes=1),
        max_power_kw=Decimal("100"),
    )
    assert rating.verdict is Verdict.IMPLAUSIBLE
    assert rating.charge == 0


@given(
    price=prices,
    start=energies,
    steps=st.lists(energies, min_size=1, max_size=30),
    order=st.randoms(use_true_random=False),
    duplicates=st.lists(st.integers(min_value=0, max_value=29), max_size=10),
)
def test_splitting_invariance(
    price: Decimal, start: Decimal, steps: list[Decimal], order: object, duplicates: list[int]
) -> None:
    """Any split of the same consumption, in any order, with duplicates, charges the same."""
    tariff = FlatTariff(price)
    readings = [(T0, start)]
    kwh = start
    for number, step in enumerate(steps, start=1):
        kwh += step
        readings.append((T0 + timedelta(hours=number), kwh))
    final = readings[-1]
    _, whole = feed(tariff, [readings[0], final])

    shuffled = readings[1:] + [readings[1:][i % len(steps)] for i in duplicates]
    order.shuffle(shuffled)  # type: ignore[attr-defined]
    # The first reading seen fixes the start; deliver it first as the field does on binding.
    _, split = feed(tariff, [readings[0], *shuffled])
    in_order_position, in_order = feed(tariff, readings)

    assert in_order == whole == round_money((final[1] - start) * price)
    # Out of order, late readings are stale; whatever arrives, the total never exceeds the
    # whole and equals it once the final reading is in.
    assert split == whole
    assert in_order_position.last_kwh == final[1]
