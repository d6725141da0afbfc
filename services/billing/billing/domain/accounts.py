"""Account rules on money: what an account owes, and the balance cap against hoarding."""

from __future__ import annotations

from decimal import Decimal

from prepaid_common.errors import Conflict

from billing.domain.money import FEN, ZERO


def amount_due(*, balance: Decimal, arrears: Decimal) -> Decimal:
    """Return what an account owes: a negative balance plus unpaid arrears, to the fen."""
    return (max(ZERO, -balance) + max(ZERO, -arrears)).quantize(FEN)


def lifts_above_cap(*, balance: Decimal, amount: Decimal, cap: Decimal | None) -> bool:
    """Whether crediting ``amount`` would lift the balance above the account's cap."""
    return cap is not None and balance + amount > cap


def ensure_top_up_fits(*, balance: Decimal, amount: Decimal, cap: Decimal | None) -> None:
    """Refuse a top-up (before money is taken) that would lift the balance above the cap.

    A payment that already arrived is credited anyway (see ``lifts_above_cap``): the money
    was taken, and an operator is told instead.
    """
    if lifts_above_cap(balance=balance, amount=amount, cap=cap):
        raise Conflict(
            f"top-up refused: balance {balance} + {amount} would exceed the account's cap of {cap}"
        )
