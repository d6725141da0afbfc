"""An account's end (销户) and its handing over (过户): what may be closed, and the
transaction that carries the old tenant's credit to the new account."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

from prepaid_common.errors import Invalid

from billing.domain.ledger import Entry, Transaction, tenant_ledger


def ensure_final_readings_known(given: Mapping[str, Decimal], bound: Iterable[str]) -> None:
    """Refuse a final reading for a meter the account does not have."""
    strangers = sorted(set(given) - set(bound))
    if strangers:
        raise Invalid(f"final readings for meters not on the account: {', '.join(strangers)}")


def carried_balance(
    *, from_account: str, to_account: str, amount: Decimal, key: str, operator: str
) -> Transaction:
    """Move the old tenant's credit (or debt) to the new account in one transaction."""
    return Transaction(
        operation_key=f"transfer:{key}",
        kind="transfer",
        account_id=from_account,
        memo=f"balance carried from {from_account} to {to_account}",
        operator=operator,
        entries=(
            Entry(tenant_ledger(from_account), -amount),
            Entry(tenant_ledger(to_account), amount),
        ),
    )
