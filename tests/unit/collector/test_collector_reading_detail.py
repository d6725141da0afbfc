"""A reading's detail text (kept with the meter's last reading): written by hand every
poll, it is the JSON the json module gives for the same values, and reads back."""

from __future__ import annotations

from decimal import Decimal

from collector.domain import DecodedReading
from collector.domain.detail import (
    _reading_detail_json,
    reading_detail_from_text,
    reading_detail_text,
)
from hypothesis import given
from hypothesis import strategies as st

decimals = st.decimals(allow_nan=False, allow_infinity=False, places=None) | st.decimals(
    min_value=-(10**9), max_value=10**9, places=3
)
maybe = st.none() | decimals
periods = st.dictionaries(st.sampled_from(["sharp", "peak", "flat", "valley"]), decimals)


@given(
    voltage=maybe,
    current=maybe,
    limit=maybe,
    tou=st.none() | periods,
)
def test_the_detail_text_is_the_json_modules_text(
    voltage: Decimal | None,
    current: Decimal | None,
    limit: Decimal | None,
    tou: dict[str, Decimal] | None,
) -> None:
    reading = DecodedReading(
        energy_kwh=Decimal("1.000"),
        voltage_v=voltage,
        current_a=current,
        power_limit_kw=limit,
        tou_kwh=tou,  # type: ignore[arg-type]
    )
    text = reading_detail_text(reading)
    assert text == _reading_detail_json(reading)
    kept = reading_detail_from_text(text)
    if voltage is not None:
        assert str(kept["voltage_v"]) == str(voltage)
    if tou:
        assert {p: str(v) for p, v in kept["tou_kwh"].items()} == {
            p: str(v) for p, v in tou.items()
        }


def test_a_reading_with_no_detail_has_no_text() -> None:
    assert reading_detail_text(DecodedReading(energy_kwh=Decimal("1.000"))) is None
