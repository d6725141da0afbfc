"""Cash at the counter: a receipt number is the operation key."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from prepaid_common.errors import Conflict, Invalid

MAX_REFERENCE_LENGTH = 64


@dataclass(frozen=True)
class CounterTopUp:
    """Cash paid at the counter against a receipt number."""

    account_id: str
    amount: Decimal
    receipt: str
    operator: str


def validate_amount(amount: Decimal) -> Decimal:
    """Return the amount if it is a positive yuan figure with at most two decimals."""
    if not amount.is_finite():
        raise Invalid("amount must be a number")
    if amount <= 0:
        raise Invalid("amount must be greater than zero")
    if amount != amount.quantize(Decimal("0.01")):
        raise Invalid("amount must have at most two decimal places (fen)")
    return amount


def validate_receipt(receipt: str) -> str:
    """Return the receipt number stripped of spaces if it is usable as an operation key."""
    cleaned = receipt.strip()
    if not cleaned:
        raise Invalid("receipt must not be empty")
    if len(cleaned) > MAX_REFERENCE_LENGTH:
        raise Invalid(f"receipt must be at most {MAX_REFERENCE_LENGTH} characters")
    return cleaned


def check_replay(existing_account: str, existing_amount: Decimal, top_up: CounterTopUp) -> None:
    """Accept a repeated receipt only if it repeats the same payment exactly."""
    if existing_account != top_up.account_id or existing_amount != top_up.amount:
        raise Conflict(
            f"receipt {top_up.receipt} was already used for {existing_amount} "
            f"on account {existing_account}"
        )
