"""Double-entry postings. Every transaction's entries sum to zero; an account's balance is
the sum of the entries on its ledger account, and nothing else changes it.

Ledger accounts:

* ``tenant:<id>``: the prepaid balance (positive = credit the tenant holds);
* ``arrears:<id>``: old debt (negative = owed), recovered from top-ups or daily;
* ``revenue:energy``, ``revenue:fixed``: what the operator earned;
* ``clearing:<method>``: money in transit (cash drawer, WeChat Pay, Alipay);
* ``adjustment:arrears``: the other side of debt an operator records.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from prepaid_common.errors import Conflict, Invalid

from billing.domain.money import FEN, ZERO, round_money

REVENUE_ENERGY = "revenue:energy"
REVENUE_FIXED = "revenue:fixed"
ARREARS_ADJUSTMENT = "adjustment:arrears"


TENANT_PREFIX = "tenant:"
ARREARS_PREFIX = "arrears:"


def is_tenants(ledger_account: str) -> bool:
    """True for a tenant's own ledger accounts (balance, arrears); False for the house's."""
    return ledger_account.startswith((TENANT_PREFIX, ARREARS_PREFIX))


def tenant_ledger(account_id: str) -> str:
    """Name of the ledger account that holds a tenant's prepaid balance."""
    return f"{TENANT_PREFIX}{account_id}"


def arrears_ledger(account_id: str) -> str:
    """Name of the ledger account that holds a tenant's old debt."""
    return f"{ARREARS_PREFIX}{account_id}"


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
    operator: str = "system"
    reverses: str | None = None

    def __post_init__(self) -> None:
        # Plain loops: a batch of readings builds a transaction per meter.
        total = ZERO
        for entry in self.entries:
            total += entry.amount
        if total != 0:
            raise ValueError(f"unbalanced transaction {self.operation_key}: sums to {total}")
        for entry in self.entries:
            if entry.amount != entry.amount.quantize(FEN):
                raise ValueError(f"transaction {self.operation_key} has sub-fen amounts")
        if not self.entries:
            raise ValueError(f"transaction {self.operation_key} has no entries")

    def amount_for(self, ledger_account: str) -> Decimal:
        return sum((e.amount for e in self.entries if e.ledger_account == ledger_account), ZERO)


def consumption_charge(
    *, account_id: str, meter_id: str, amount: Decimal, position_key: str
) -> Transaction:
    """Debit a tenant for energy used up to a rating position."""
    return Transaction(
        operation_key=f"consumption:{meter_id}:{position_key}",
        kind="consumption",
        account_id=account_id,
        memo=f"energy on {meter_id} up to {position_key}",
        entries=(Entry(tenant_ledger(account_id), -amount), Entry(REVENUE_ENERGY, amount)),
    )


def top_up(
    *,
    account_id: str,
    payment_id: str,
    amount: Decimal,
    method: str,
    reference: str,
    owed: Decimal = ZERO,
    debt_share: Decimal = ZERO,
    operator: str = "system",
) -> Transaction:
    """Credit a tenant with money received, less the share that recovers old debt.

    ``operator``: who took the money (the cashier at the counter; "system" for a provider
    payment nobody keyed in)."""
    recovered = min(owed, round_money(amount * debt_share)) if owed > 0 else ZERO
    entries = [
        Entry(tenant_ledger(account_id), amount - recovered),
        Entry(clearing_ledger(method), -amount),
    ]
    if recovered > 0:
        entries.append(Entry(arrears_ledger(account_id), recovered))
    memo = f"{method} {reference}" + (f"; {recovered} to arrears" if recovered else "")
    return Transaction(
        operation_key=f"payment:{payment_id}",
        kind="top_up",
        account_id=account_id,
        memo=memo,
        operator=operator,
        entries=tuple(e for e in entries if e.amount != 0),
    )


def fixed_charge(*, account_id: str, amount: Decimal, period: str, what: str) -> Transaction:
    """A standing charge for a day or a month (``period`` names it, e.g. 2026-03-10)."""
    return Transaction(
        operation_key=f"fixed:{what}:{account_id}:{period}",
        kind=f"{what}_charge",
        account_id=account_id,
        memo=f"{what} charge for {period}",
        entries=(Entry(tenant_ledger(account_id), -amount), Entry(REVENUE_FIXED, amount)),
    )


def record_arrears(
    *, account_id: str, amount: Decimal, key: str, reason: str, operator: str
) -> Transaction:
    """Record old debt the tenant owes (carried over from a previous system or bill)."""
    return Transaction(
        operation_key=f"arrears:{account_id}:{key}",
        kind="arrears",
        account_id=account_id,
        memo=reason,
        operator=operator,
        entries=(Entry(arrears_ledger(account_id), -amount), Entry(ARREARS_ADJUSTMENT, amount)),
    )


def daily_debt_recovery(*, account_id: str, amount: Decimal, day: str) -> Transaction:
    """Move a fixed daily amount from the prepaid balance to old debt."""
    return Transaction(
        operation_key=f"debt-daily:{account_id}:{day}",
        kind="debt_recovery",
        account_id=account_id,
        memo=f"daily debt recovery {day}",
        entries=(
            Entry(tenant_ledger(account_id), -amount),
            Entry(arrears_ledger(account_id), amount),
        ),
    )


def refund(
    *, account_id: str, amount: Decimal, method: str, key: str, reason: str, operator: str
) -> Transaction:
    """Pay credit back to the tenant (退费)."""
    return Transaction(
        operation_key=f"refund:{key}",
        kind="refund",
        account_id=account_id,
        memo=reason,
        operator=operator,
        entries=(Entry(tenant_ledger(account_id), -amount), Entry(clearing_ledger(method), amount)),
    )


def reversal(original: Transaction, *, original_id: str, reason: str, operator: str) -> Transaction:
    """Undo a posted transaction with its mirror image (冲正); the original stays."""
    return Transaction(
        operation_key=f"reversal:{original_id}",
        kind="reversal",
        account_id=original.account_id,
        memo=f"reverses {original.kind} {original_id}: {reason}",
        operator=operator,
        reverses=original_id,
        entries=tuple(Entry(e.ledger_account, -e.amount) for e in original.entries),
    )


def ensure_refund_covered(txn: Transaction, *, balance: Decimal) -> None:
    """Refuse a refund that pays back more than the tenant's balance holds."""
    if txn.kind != "refund":
        return
    refunded = -txn.amount_for(tenant_ledger(txn.account_id))
    if refunded > balance:
        raise Invalid(f"refund {refunded} exceeds the balance {balance}")


def ensure_reversal_covered(txn: Transaction, *, balance: Decimal) -> None:
    """Refuse a reversal that takes more from the tenant than the balance holds.

    Like a refund, a reversal never takes the balance below zero (nor lower, when it is
    below zero already): reversing a top-up after the money was refunded or spent would
    make a debt out of a correction. Refund or record arrears instead, knowingly.
    """
    taken = -txn.amount_for(tenant_ledger(txn.account_id))
    if taken > 0 and taken > max(balance, ZERO):
        raise Conflict(
            f"the reversal takes {taken} from a balance of {balance}: it would leave"
            f" {balance - taken}; refund or record arrears instead"
        )


def same_posting(first: Transaction, again: Transaction) -> bool:
    """Whether two transactions under one operation key say the same thing (a replay)."""
    return (
        first.operation_key == again.operation_key
        and first.kind == again.kind
        and first.account_id == again.account_id
        and sorted((e.ledger_account, e.amount) for e in first.entries)
        == sorted((e.ledger_account, e.amount) for e in again.entries)
    )


def ensure_reversible(kind: str) -> None:
    """Refuse to reverse a reversal: a correction of a correction is a new transaction."""
    if kind == "reversal":
        raise Invalid("a reversal cannot itself be reversed; post a new transaction")
