"""Rating rules, with splitting invariance proved over every tariff shape."""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from billing.domain.money import round_money
from billing.domain.rating import (
    MeterReading,
    Position,
    TariffVersion,
    Verdict,
    position_from_json,
    position_to_json,
    rate_reading,
)
from billing.domain.tariffs import (
    PERIODS,
    PeriodEnergy,
    PeriodSpan,
    Season,
    TariffDefinition,
    Tier,
    TouCalendar,
    energy_charge,
)
from hypothesis import given, settings
from hypothesis import strategies as st

SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 3, 10, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai, mid-cycle


def flat(price: str) -> list[TariffVersion]:
    return [
        TariffVersion(
            "v1",
            T0 - timedelta(days=365),
            TariffDefinition(kind="flat", price_per_kwh=Decimal(price)),
        )
    ]


def feed(
    versions: list[TariffVersion],
    readings: list[MeterReading],
    *,
    multiplier: Decimal = Decimal(1),
    position: Position | None = None,
) -> tuple[Position, Decimal]:
    position = position or Position()
    total = Decimal("0.00")
    for reading in readings:
        rating = rate_reading(
            position, reading, versions=versions, zone=SHANGHAI, multiplier=multiplier
        )
        position = rating.position
        total += rating.charge
    return position, total


def test_round_money_is_half_up_to_the_fen() -> None:
    assert round_money(Decimal("0.005")) == Decimal("0.01")
    assert round_money(Decimal("0.0049")) == Decimal("0.00")
    assert round_money(Decimal("2.675")) == Decimal("2.68")


def test_first_reading_fixes_the_start_and_charges_nothing() -> None:
    rating = rate_reading(
        Position(), MeterReading(T0, Decimal("100")), versions=flat("1"), zone=SHANGHAI
    )
    assert rating.verdict is Verdict.FIRST
    assert rating.charge == 0
    assert rating.position.last == MeterReading(T0, Decimal("100"))


def test_charge_is_the_difference_of_cumulative_charges() -> None:
    readings = [
        MeterReading(T0 + timedelta(minutes=m), Decimal(kwh))
        for m, kwh in [(0, "10"), (1, "10.001"), (2, "10.002"), (3, "13")]
    ]
    _, total = feed(flat("0.3333"), readings)
    # Each small step alone rounds to 0.00; the 3 kWh in all cost 1.00 exactly.
    assert total == Decimal("1.00")


def test_stale_and_duplicate_readings_change_nothing() -> None:
    versions = flat("1.5")
    position, _ = feed(
        versions,
        [MeterReading(T0, Decimal(1)), MeterReading(T0 + timedelta(hours=1), Decimal(3))],
    )
    for late in (
        MeterReading(T0 + timedelta(hours=1), Decimal(3)),
        MeterReading(T0 + timedelta(minutes=30), Decimal(2)),
    ):
        rating = rate_reading(position, late, versions=versions, zone=SHANGHAI)
        assert rating.verdict is Verdict.STALE
        assert rating.charge == 0
        assert rating.position == position


def test_a_reading_older_than_the_start_extends_it_back_and_is_charged() -> None:
    """The first reading delivered is not always the first read: the energy between an
    older one and the start is billed, and tiers count from the older one."""
    tariff = TariffDefinition(
        kind="tiered",
        price_per_kwh=Decimal(1),
        tiers=[Tier(up_to_kwh=Decimal(10)), Tier(surcharge=Decimal(1))],
    )
    versions = [TariffVersion("v", T0 - timedelta(days=1), tariff)]
    early = MeterReading(T0, Decimal(100))
    middle = MeterReading(T0 + timedelta(hours=1), Decimal(108))
    late = MeterReading(T0 + timedelta(hours=2), Decimal(112))
    position, in_order = feed(versions, [early, middle, late])
    position_late, out_of_order = feed(versions, [middle, late, early])
    # 12 kWh: 10 at 1.00 and 2 in the second tier at 2.00, whatever the order.
    assert in_order == out_of_order == Decimal("14.00")
    assert position_late.opened == early
    assert position_late.cycle_energy == position.cycle_energy
    assert position_late.last == late


def test_a_reading_older_than_the_start_across_a_cycle_is_an_anomaly() -> None:
    tariff = TariffDefinition(
        kind="flat", price_per_kwh=Decimal(1), cycle="monthly", cycle_reset_day=1
    )
    versions = [TariffVersion("v", T0 - timedelta(days=365), tariff)]
    april = datetime(2026, 4, 2, 12, tzinfo=SHANGHAI)
    position, _ = feed(versions, [MeterReading(april, Decimal(20))])
    rating = rate_reading(
        position,
        MeterReading(april - timedelta(days=3), Decimal(15)),
        versions=versions,
        zone=SHANGHAI,
    )
    assert rating.verdict is Verdict.BEFORE_START
    assert "5 kWh not billed" in rating.detail
    assert rating.charge == 0
    assert rating.position == position


def test_a_reading_older_than_the_start_with_a_higher_register_is_backwards() -> None:
    versions = flat("1")
    position, _ = feed(versions, [MeterReading(T0, Decimal(50))])
    rating = rate_reading(
        position,
        MeterReading(T0 - timedelta(hours=1), Decimal(51)),
        versions=versions,
        zone=SHANGHAI,
    )
    assert rating.verdict is Verdict.BACKWARDS
    assert rating.position == position


def test_positions_stored_before_the_start_was_kept_treat_older_readings_as_stale() -> None:
    versions = flat("1")
    position, _ = feed(versions, [MeterReading(T0, Decimal(50))])
    stored = position_from_json({**position_to_json(position), "opened": None})
    assert stored.opened is None
    rating = rate_reading(
        stored, MeterReading(T0 - timedelta(hours=1), Decimal(49)), versions=versions, zone=SHANGHAI
    )
    assert rating.verdict is Verdict.STALE


def test_register_going_backwards_is_an_anomaly_not_a_credit() -> None:
    versions = flat("1")
    position, _ = feed(
        versions,
        [MeterReading(T0, Decimal(50)), MeterReading(T0 + timedelta(hours=1), Decimal(51))],
    )
    rating = rate_reading(
        position,
        MeterReading(T0 + timedelta(hours=2), Decimal(3)),
        versions=versions,
        zone=SHANGHAI,
    )
    assert rating.verdict is Verdict.BACKWARDS
    assert (rating.charge, rating.position) == (0, position)


def test_a_tou_register_going_backwards_is_an_anomaly() -> None:
    versions = [TariffVersion("v", T0 - timedelta(days=1), tou_tariff())]
    start = MeterReading(
        T0, Decimal(10), PeriodEnergy(Decimal(1), Decimal(2), Decimal(3), Decimal(4))
    )
    later = MeterReading(
        T0 + timedelta(hours=1),
        Decimal(11),
        PeriodEnergy(Decimal(1), Decimal(1), Decimal(5), Decimal(4)),
    )
    position, _ = feed(versions, [start])
    assert (
        rate_reading(position, later, versions=versions, zone=SHANGHAI).verdict is Verdict.BACKWARDS
    )


def test_impossible_jump_is_an_anomaly() -> None:
    position, _ = feed(flat("1"), [MeterReading(T0, Decimal(0))])
    rating = rate_reading(
        position,
        MeterReading(T0 + timedelta(minutes=1), Decimal(5000)),
        versions=flat("1"),
        zone=SHANGHAI,
        max_power_kw=Decimal(100),
    )
    assert rating.verdict is Verdict.IMPLAUSIBLE
    assert rating.charge == 0


def tou_tariff(**extra: object) -> TariffDefinition:
    return TariffDefinition(
        kind="tou",
        period_prices={
            "sharp": Decimal("1.5"),
            "peak": Decimal("1.2"),
            "flat": Decimal("0.8"),
            "valley": Decimal("0.3"),
        },
        calendar=TouCalendar(
            seasons=[
                Season(
                    months=list(range(1, 13)),
                    workday=[
                        PeriodSpan(start=time(0), period="valley"),
                        PeriodSpan(start=time(8), period="flat"),
                        PeriodSpan(start=time(10), period="peak"),
                        PeriodSpan(start=time(12), period="flat"),
                    ],
                )
            ]
        ),
        **extra,  # type: ignore[arg-type]
    )


def test_tier_boundary_inside_one_interval() -> None:
    tariff = TariffDefinition(
        kind="tiered",
        price_per_kwh=Decimal("0.5"),
        tiers=[Tier(up_to_kwh=Decimal(10)), Tier(surcharge=Decimal("0.3"))],
    )
    versions = [TariffVersion("v", T0 - timedelta(days=1), tariff)]
    _, total = feed(
        versions,
        [MeterReading(T0, Decimal(100)), MeterReading(T0 + timedelta(hours=2), Decimal(115))],
    )
    assert total == Decimal("15") * Decimal("0.5") + Decimal("5") * Decimal("0.3")


def test_tou_without_registers_splits_a_steady_load_by_the_calendar() -> None:
    # 09:00 to 11:00 Shanghai: one hour flat, one hour peak, 2 kWh each hour.
    versions = [TariffVersion("v", T0 - timedelta(days=1), tou_tariff())]
    _, total = feed(
        versions,
        [MeterReading(T0, Decimal(0)), MeterReading(T0 + timedelta(hours=2), Decimal(4))],
    )
    assert total == Decimal("2") * Decimal("0.8") + Decimal("2") * Decimal("1.2")


def test_multiplier_and_loss_factor_scale_billed_energy() -> None:
    tariff = TariffDefinition(kind="flat", price_per_kwh=Decimal(1), loss_factor=Decimal("0.02"))
    versions = [TariffVersion("v", T0 - timedelta(days=1), tariff)]
    _, total = feed(
        versions,
        [MeterReading(T0, Decimal(0)), MeterReading(T0 + timedelta(hours=1), Decimal(1))],
        multiplier=Decimal(40),  # CT 200/5 on a secondary-side meter
    )
    assert total == Decimal("40.80")


def test_a_new_version_prices_consumption_after_it_takes_effect() -> None:
    change = T0 + timedelta(hours=1)
    versions = [
        TariffVersion(
            "old", T0 - timedelta(days=1), TariffDefinition(kind="flat", price_per_kwh=Decimal(1))
        ),
        TariffVersion("new", change, TariffDefinition(kind="flat", price_per_kwh=Decimal(2))),
    ]
    # 4 kWh over two hours at a steady load: half before the change, half after.
    position, total = feed(
        versions,
        [MeterReading(T0, Decimal(0)), MeterReading(T0 + timedelta(hours=2), Decimal(4))],
    )
    assert total == Decimal("2") * 1 + Decimal("2") * 2
    assert position.segment_version == "new"


def test_tiers_restart_with_a_new_cycle() -> None:
    tariff = TariffDefinition(
        kind="tiered",
        price_per_kwh=Decimal(1),
        tiers=[Tier(up_to_kwh=Decimal(10)), Tier(surcharge=Decimal(1))],
        cycle="monthly",
        cycle_reset_day=1,
    )
    versions = [TariffVersion("v", T0 - timedelta(days=365), tariff)]
    march_end = datetime(2026, 3, 31, 12, tzinfo=SHANGHAI)
    april = datetime(2026, 4, 2, 12, tzinfo=SHANGHAI)
    position, total = feed(
        versions,
        [
            MeterReading(march_end - timedelta(days=20), Decimal(0)),
            MeterReading(march_end, Decimal(12)),  # 2 kWh in the second tier
            MeterReading(april - timedelta(days=1), Decimal(12)),  # 1 April 12:00, nothing used
            MeterReading(april, Decimal(17)),  # 5 kWh in April: first tier again
        ],
    )
    assert total == Decimal(12) + Decimal(2) + Decimal(5)
    assert position.cycle_start == datetime(2026, 4, 1, tzinfo=SHANGHAI)
    assert position.cycle_energy.total == Decimal(5)


def test_tariff_definitions_refuse_incomplete_shapes() -> None:
    with pytest.raises(ValueError, match="period_prices"):
        TariffDefinition(kind="tou", period_prices={"peak": Decimal(1)})
    with pytest.raises(ValueError, match="price_per_kwh"):
        TariffDefinition(kind="flat")
    with pytest.raises(ValueError, match="without up_to_kwh"):
        TariffDefinition(
            kind="tiered", price_per_kwh=Decimal(1), tiers=[Tier(up_to_kwh=Decimal(5))]
        )
    with pytest.raises(ValueError, match="increase"):
        TariffDefinition(
            kind="tiered",
            price_per_kwh=Decimal(1),
            tiers=[Tier(up_to_kwh=Decimal(5)), Tier(up_to_kwh=Decimal(3)), Tier()],
        )
    with pytest.raises(ValueError, match="each month"):
        TouCalendar(
            seasons=[Season(months=[1], workday=[PeriodSpan(start=time(0), period="flat")])]
        )


# --- splitting invariance over every shape -----------------------------------------------

prices = st.decimals(min_value=Decimal("0"), max_value=Decimal("5"), places=4)
steps = st.decimals(min_value=Decimal("0"), max_value=Decimal("20"), places=3)


@st.composite
def tariffs(draw: st.DrawFn) -> TariffDefinition:
    kind = draw(st.sampled_from(["flat", "tou", "tiered", "tiered_tou"]))
    tiers: list[Tier] = []
    if kind.startswith("tiered"):
        bounds = sorted(set(draw(st.lists(st.integers(1, 300), min_size=1, max_size=3))))
        tiers = [Tier(up_to_kwh=Decimal(b), surcharge=draw(prices)) for b in bounds]
        tiers.append(Tier(surcharge=draw(prices)))
    return TariffDefinition(
        kind=kind,
        price_per_kwh=None if kind in ("tou", "tiered_tou") else draw(prices),
        period_prices={p: draw(prices) for p in PERIODS} if kind in ("tou", "tiered_tou") else None,
        tiers=tiers,
        loss_factor=draw(st.sampled_from([Decimal(0), Decimal("0.015"), Decimal("0.05")])),
    )


@settings(max_examples=200, deadline=None)
@given(
    tariff=tariffs(),
    increments=st.lists(st.tuples(*(steps for _ in PERIODS)), min_size=1, max_size=25),
    shuffle_seed=st.integers(0, 2**32),
    duplicates=st.lists(st.integers(0, 24), max_size=8),
    multiplier=st.sampled_from([Decimal(1), Decimal(30), Decimal("2.5")]),
)
def test_splitting_invariance(
    tariff: TariffDefinition,
    increments: list[tuple[Decimal, ...]],
    shuffle_seed: int,
    duplicates: list[int],
    multiplier: Decimal,
) -> None:
    """One reading or many, in any order, with duplicates: the same total to the fen."""
    versions = [TariffVersion("v", T0 - timedelta(days=1), tariff)]
    registers = PeriodEnergy(Decimal(100), Decimal(200), Decimal(300), Decimal(400))
    readings = [MeterReading(T0, registers.total, registers)]
    for number, step in enumerate(increments, start=1):
        registers = registers + PeriodEnergy(*step)
        readings.append(
            MeterReading(T0 + timedelta(minutes=5 * number), registers.total, registers)
        )
    first, final = readings[0], readings[-1]

    _, whole = feed(versions, [first, final], multiplier=multiplier)
    _, in_order = feed(versions, readings, multiplier=multiplier)
    rest = readings[1:] + [readings[1:][i % len(increments)] for i in duplicates]
    random.Random(shuffle_seed).shuffle(rest)
    _, shuffled = feed(versions, [first, *rest], multiplier=multiplier)
    # The first reading read need not be the first delivered: any order at all.
    every = [*readings, *(readings[i % len(readings)] for i in duplicates)]
    random.Random(shuffle_seed + 1).shuffle(every)
    _, any_order = feed(versions, every, multiplier=multiplier)

    billed = (final.tou_kwh - first.tou_kwh).scaled(multiplier * (1 + tariff.loss_factor))  # type: ignore[operator]
    expected = round_money(
        energy_charge(
            tariff, billed if tariff.uses_periods else PeriodEnergy.all_flat(billed.total)
        )
    )
    assert whole == in_order == shuffled == any_order == expected
