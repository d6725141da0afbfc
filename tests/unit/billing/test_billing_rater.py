"""The quick rater gives exactly the ratings of ``rate_reading``, and the direct position
text is exactly the JSON the service stored before."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from billing.domain.rater import Rater, position_from_text, position_text
from billing.domain.rating import (
    MeterReading,
    Position,
    TariffVersion,
    Verdict,
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
)
from hypothesis import given, settings
from hypothesis import strategies as st

SHANGHAI = ZoneInfo("Asia/Shanghai")
# Near a month end, so that monthly cycles reset inside many generated runs.
T0 = datetime(2026, 3, 30, 20, 0, tzinfo=UTC)

prices = st.decimals(min_value=Decimal("0"), max_value=Decimal("5"), places=4)
CALENDAR = TouCalendar(
    seasons=[
        Season(
            months=list(range(1, 13)),
            workday=[
                PeriodSpan(start=time(0), period="valley"),
                PeriodSpan(start=time(8), period="flat"),
                PeriodSpan(start=time(10), period="peak"),
                PeriodSpan(start=time(19), period="sharp"),
                PeriodSpan(start=time(21), period="flat"),
            ],
        )
    ]
)


@st.composite
def definitions(draw: st.DrawFn) -> TariffDefinition:
    kind = draw(st.sampled_from(["flat", "tou", "tiered", "tiered_tou"]))
    tiers: list[Tier] = []
    if kind.startswith("tiered"):
        bounds = sorted(set(draw(st.lists(st.integers(1, 300), min_size=1, max_size=3))))
        tiers = [Tier(up_to_kwh=Decimal(b), surcharge=draw(prices)) for b in bounds]
        tiers.append(Tier(surcharge=draw(prices)))
    periods = kind in ("tou", "tiered_tou")
    return TariffDefinition(
        kind=kind,
        price_per_kwh=None if periods else draw(prices),
        period_prices={p: draw(prices) for p in PERIODS} if periods else None,
        calendar=CALENDAR if periods and draw(st.booleans()) else None,
        tiers=tiers,
        cycle=draw(st.sampled_from(["monthly", "yearly"])),
        cycle_reset_day=draw(st.sampled_from([1, 28])),
        cycle_reset_month=draw(st.sampled_from([1, 4])),
        loss_factor=draw(st.sampled_from([Decimal(0), Decimal("0.015"), Decimal("0.05")])),
    )


@st.composite
def tariff_versions(draw: st.DrawFn) -> list[TariffVersion]:
    versions = [TariffVersion("v0", T0 - timedelta(days=400), draw(definitions()))]
    for number, minutes in enumerate(
        sorted(set(draw(st.lists(st.integers(1, 60 * 24 * 5), max_size=2)))), start=1
    ):
        versions.append(
            TariffVersion(f"v{number}", T0 + timedelta(minutes=minutes), draw(definitions()))
        )
    # Stored order is by effective_from, but the rater must not rely on it.
    return list(reversed(versions)) if draw(st.booleans()) else versions


# A step: minutes later (0 or negative: stale), kWh by period (negative: backwards).
step = st.tuples(
    st.sampled_from([-5, 0, 1, 3, 5, 15, 60, 240, 60 * 24, 60 * 24 * 3]),
    st.lists(
        st.decimals(min_value=Decimal("-1"), max_value=Decimal("30"), places=3),
        min_size=4,
        max_size=4,
    ),
    st.booleans(),  # the reading carries TOU registers
)


@settings(max_examples=400, deadline=None)
@given(
    versions=tariff_versions(),
    steps=st.lists(step, min_size=1, max_size=30),
    multiplier=st.sampled_from([Decimal(1), Decimal(30), Decimal("2.5")]),
    max_power=st.sampled_from([Decimal(1000), Decimal(5)]),
)
def test_the_rater_rates_exactly_as_rate_reading(
    versions: list[TariffVersion],
    steps: list[tuple[int, list[Decimal], bool]],
    multiplier: Decimal,
    max_power: Decimal,
) -> None:
    rater = Rater(versions, SHANGHAI)
    registers = PeriodEnergy(Decimal(100), Decimal(200), Decimal(300), Decimal(400))
    at = T0
    reference = quick = Position()
    seen: set[Verdict] = set()
    for minutes, kwh, with_tou in [(0, [Decimal(0)] * 4, True), *steps]:
        at += timedelta(minutes=minutes)
        registers = registers + PeriodEnergy(*kwh)
        reading = MeterReading(at, registers.total, registers if with_tou else None)
        expected = rate_reading(
            reference,
            reading,
            versions=versions,
            zone=SHANGHAI,
            multiplier=multiplier,
            max_power_kw=max_power,
        )
        # The same position in, the same rating out (money, energy, verdict, position).
        assert rater.rate(reference, reading, multiplier=multiplier, max_power_kw=max_power) == (
            expected
        )
        # And the rater fed its own positions stays on the same path.
        mine = rater.rate(quick, reading, multiplier=multiplier, max_power_kw=max_power)
        assert mine == expected
        # Equal to the digit and exponent, not only in value: what is stored and summed.
        assert str(mine.charge) == str(expected.charge)
        assert str(mine.metered_kwh) == str(expected.metered_kwh)
        assert str(mine.billed_kwh) == str(expected.billed_kwh)
        assert position_text(mine.position) == json.dumps(position_to_json(expected.position))
        reference, quick = expected.position, mine.position
        seen.add(expected.verdict)
        # What is stored is what the service stored before, and reads back equal.
        text = position_text(quick)
        assert text == json.dumps(position_to_json(quick))
        assert position_from_text(text) == quick


def test_the_plain_case_is_taken_without_rate_reading(monkeypatch: object) -> None:
    """A reading inside one cycle and segment is rated by the rater itself."""
    import billing.domain.rater as module

    versions = [
        TariffVersion(
            "v", T0 - timedelta(days=1), TariffDefinition(kind="flat", price_per_kwh=Decimal("0.8"))
        )
    ]
    rater = Rater(versions, SHANGHAI)
    first = rater.rate(Position(), MeterReading(T0, Decimal(1000)))
    calls: list[object] = []
    original = module.rate_reading

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(args)
        return original(*args, **kwargs)  # type: ignore[arg-type]

    module.rate_reading = counting  # type: ignore[assignment]
    try:
        rating = rater.rate(
            first.position, MeterReading(T0 + timedelta(minutes=3), Decimal("1000.05"))
        )
    finally:
        module.rate_reading = original
    assert calls == []
    assert rating.verdict is Verdict.CHARGE
    assert rating.charge == Decimal("0.04")  # 0.05 kWh x 0.8 = 0.040


def test_a_cycle_reset_under_a_version_with_another_cycle_is_left_to_rate_reading() -> None:
    """A yearly tariff replaced mid-cycle by a monthly one: the month ends long before the
    year's cycle would, and the reset must happen there."""
    yearly = TariffDefinition(
        kind="tiered",
        price_per_kwh=Decimal(1),
        tiers=[Tier(up_to_kwh=Decimal(10)), Tier(surcharge=Decimal(1))],
        cycle="yearly",
        cycle_reset_month=3,
        cycle_reset_day=28,
    )
    monthly = yearly.model_copy(update={"cycle": "monthly"})
    versions = [
        TariffVersion("yearly", T0 - timedelta(days=400), yearly),
        TariffVersion("monthly", T0 + timedelta(hours=1), monthly),
    ]
    rater = Rater(versions, SHANGHAI)
    readings = [
        MeterReading(T0, Decimal(0)),
        MeterReading(T0 + timedelta(hours=2), Decimal(8)),  # the monthly segment starts
        MeterReading(T0 + timedelta(days=30), Decimal(16)),  # into the next month
        MeterReading(T0 + timedelta(days=31), Decimal(24)),  # tiers counted afresh
    ]
    reference = quick = Position()
    for reading in readings:
        expected = rate_reading(reference, reading, versions=versions, zone=SHANGHAI)
        mine = rater.rate(quick, reading)
        assert mine == expected
        reference, quick = expected.position, mine.position
    assert quick.cycle_energy.total == Decimal(8)  # only the last reading's, this cycle


def test_position_text_of_a_meter_never_read() -> None:
    assert position_text(Position()) == json.dumps(position_to_json(Position()))
    assert position_from_text(None) == Position()


def test_position_text_tells_equal_instants_in_other_zones_apart() -> None:
    """Cycle start texts are kept, but an equal instant in another zone is another text."""
    start = datetime(2026, 3, 1, tzinfo=SHANGHAI)
    for cycle_start in (start, start.astimezone(UTC), start, start.astimezone(UTC)):
        position = Position(
            last=MeterReading(T0, Decimal("1.000")),
            cycle_start=cycle_start,
            cycle_energy=PeriodEnergy(flat=Decimal("0.0500")),
            segment_version="v",
            segment_base=PeriodEnergy(flat=Decimal("0.050")),
            segment_charged=Decimal("0.04"),
        )
        text = position_text(position)
        assert text == json.dumps(position_to_json(position))
        assert position_from_text(text) == position
