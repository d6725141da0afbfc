"""The one rounding rule for money.

Money is yuan with two decimals (fen). A charge is computed exactly in Decimal and rounded
once, half up, to the fen, on the *cumulative* charge of a billing position (see rating):
the rounding of successive charges then telescopes and never drifts.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

FEN = Decimal("0.01")
ZERO = Decimal("0.00")


def round_money(amount: Decimal) -> Decimal:
    """Round an exact amount to the fen, half up."""
    return amount.quantize(FEN, rounding=ROUND_HALF_UP)
