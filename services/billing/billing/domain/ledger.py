"""Double-entry postings. Every transaction's entries sum to zero; an account's balance is
the sum of the entries on its ledger account, and nothing else changes it."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


def tenant_ledger(account_id: str) -> str:
    """Name of the ledger account that holds a tenant's prepaid balance."""
    return f"tenant:{account_id}"


REVENUE_ENERGY = "revenue:energy"


def clearing_ledger(method: str) -> str:
    """Name of the ledger account money arrives through (cash drawer, a provider)."""
    return f"clearing:{method}"


@dataclass(frozen=True)
class Entry:
    ledger_account: str
    amount: Decimal


@dataclass(frozen=True)
class Transaction:
    """A balanced set of entries, unique on its operation key."""

    operation_key: str
    kind: str
    account_id: str
    memo: str
    entries: tuple[Entry, ...]

    def __post_init__(self) -> None:
        total = sum((entry.amount for entry in self.entries), Decimal(0))
        if total != 0:
            raise ValueError(f"unbalanced transaction {self.operation_key}: sums to {total}")
        if any(entry.amount != entry.amount.quantize(Decimal("0.01")) for entry in self.entries):
            raise ValueError(f"transaction {self.operation_key} has sub-fen amounts")


def consumption_charge(
    *, account_id: str, meter_id: str, amount: Decimal, up_to_kwh: Decimal
) -> Transaction:
    """Debit a tenant for energy used up to a register value."""
    return Transaction(
        operation_key=f"consumption:{meter_id}:{up_to_kwh}",
        kind="consumption",
        account_id=account_id,
        memo=f"energy on {meter_id} up to {up_to_kwh} kWh",
        entries=(
            Entry(tenant_ledger(account_id), -amount),
            Entry(REVENUE_ENERGY, amount),
        ),
    )


def top_up(
    *, account_id: str, payment_id: str, amount: Decimal, method: str, reference: str
) -> Transaction:
    """Credit a tenant with money received."""
    return Transaction(
        operation_key=f"payment:{payment_id}",
        kind="top_up",
        account_id=account_id,
        memo=f"{method} {reference}",
        entries=(
            Entry(tenant_ledger(account_id), amount),
            Entry(clearing_ledger(method), -amount),
        ),
    )
