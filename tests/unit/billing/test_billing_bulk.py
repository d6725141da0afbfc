"""Set-at-a-time writes turn amounts into stored units exactly as the column type does."""

from __future__ import annotations

from decimal import Decimal

import pytest
from billing import bulk
from hypothesis import given
from hypothesis import strategies as st
from prepaid_common.db import ScaledDecimal

decimals = st.decimals(
    min_value=Decimal(-(10**12)), max_value=Decimal(10**12), allow_nan=False
) | st.decimals(min_value=Decimal(-(10**9)), max_value=Decimal(10**9), places=4)


@given(values=st.lists(st.none() | decimals, max_size=20), scale=st.sampled_from([2, 3, 6]))
def test_units_are_the_scaled_decimal_type_s_own(values: list[Decimal | None], scale: int) -> None:
    kind = ScaledDecimal(scale)
    try:
        expected: list[int | None] | type[Exception] = [
            kind.process_bind_param(value, None)  # type: ignore[arg-type]
            for value in values
        ]
    except ValueError:
        expected = ValueError
    if expected is ValueError:
        with pytest.raises(ValueError, match="decimal places"):
            bulk.in_units(values, scale)
    else:
        assert bulk.in_units(values, scale) == expected


def test_units_refuse_what_is_not_a_decimal() -> None:
    with pytest.raises(TypeError):
        bulk.in_units([Decimal(1), 1.5], 2)  # type: ignore[list-item]
