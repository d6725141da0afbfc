"""Yuan and fen, exactly: WeChat speaks integer fen, Alipay two-decimal yuan strings."""

from __future__ import annotations

from decimal import Decimal

from prepaid_common.errors import Invalid

FEN_PER_YUAN = 100
_CENT = Decimal("0.01")


def yuan_to_fen(amount: Decimal) -> int:
    """Return the whole number of fen in a yuan amount; refuse a fraction of a fen."""
    if not amount.is_finite():
        raise Invalid("amount must be a number")
    fen = amount * FEN_PER_YUAN
    if fen != fen.to_integral_value():
        raise Invalid(f"amount {amount} is not a whole number of fen")
    return int(fen)


def fen_to_yuan(fen: int) -> Decimal:
    """Return a fen count as yuan with exactly two decimals."""
    return (Decimal(fen) / FEN_PER_YUAN).quantize(_CENT)


def yuan_text(amount: Decimal) -> str:
    """Return yuan as Alipay writes them: two decimals, no exponent (``12.50``)."""
    return f"{amount.quantize(_CENT):f}"


def parse_yuan(text: str) -> Decimal:
    """Read an Alipay yuan string; refuse anything that is not a plain decimal."""
    try:
        amount = Decimal(text)
    except ArithmeticError as error:
        raise Invalid(f"not an amount: {text!r}") from error
    if not amount.is_finite():
        raise Invalid(f"not an amount: {text!r}")
    return amount
