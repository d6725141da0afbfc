"""Common-area apportionment (公摊): a common account's energy cost for a month shared out
among member accounts by floor area or by their own consumption.

The shares are exact to the fen and sum to the total: each share is its weight's part
rounded down to the fen, and the fens left over go one each to the largest remainders
(ties to the first member in the rule's order), so no fen is made or lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from prepaid_common.errors import Invalid

from billing.domain.ledger import Entry, Transaction, tenant_ledger
from billing.domain.money import FEN, ZERO


@dataclass(frozen=True)
class Share:
    account_id: str
    weight: Decimal
    amount: Decimal


def split_by_weight(total: Decimal, weights: Sequence[tuple[str, Decimal]]) -> list[Share]:
    """Split ``total`` (whole fen, >= 0) by the weights; the shares sum to it exactly."""
    if total < 0 or total != total.quantize(FEN):
        raise ValueError(f"a total to share is whole fen and not negative: {total}")
    if any(weight < 0 for _, weight in weights):
        raise Invalid("apportionment weights cannot be negative")
    whole = sum((weight for _, weight in weights), ZERO)
    if whole == 0:
        raise Invalid("the members have no weight to share by (no floor area or no consumption)")
    exact = [total * weight / whole for _, weight in weights]
    floors = [part.quantize(FEN, rounding=ROUND_DOWN) for part in exact]
    left = int((total - sum(floors, ZERO)) / FEN)
    # The largest remainders get the fens left; earlier members first on a tie.
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - floors[i]), i))
    for i in order[:left]:
        floors[i] += FEN
    return [
        Share(account_id, weight, amount)
        for (account_id, weight), amount in zip(weights, floors, strict=True)
    ]


def share_transaction(
    *, rule_id: str, month: str, common_account_id: str, share: Share, total: Decimal, method: str
) -> Transaction:
    """Move one member's share from the common account to the member (the statement's line)."""
    basis = "floor area" if method == "area" else "consumption"
    return Transaction(
        operation_key=f"apportion:{rule_id}:{month}:{share.account_id}",
        kind="apportionment",
        account_id=share.account_id,
        memo=(
            f"common area {rule_id} {month}: {share.amount} of {total} by {basis} ({share.weight})"
        ),
        entries=(
            Entry(tenant_ledger(share.account_id), -share.amount),
            Entry(tenant_ledger(common_account_id), share.amount),
        ),
    )
