"""Balances: the projection of the sum of each ledger account's entries (billing_balances)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing import bulk
from billing.domain import ledger
from billing.domain.money import ZERO
from billing.tables import balances


async def balance_of(session: AsyncSession, account_id: str) -> Decimal:
    """Return an account's balance (the projection of the sum of its ledger entries)."""
    return await _balance(session, ledger.tenant_ledger(account_id))


async def arrears_of(session: AsyncSession, account_id: str) -> Decimal:
    """Return an account's arrears balance (negative = owed)."""
    return await _balance(session, ledger.arrears_ledger(account_id))


async def _balance(session: AsyncSession, ledger_account: str) -> Decimal:
    # billing_balances moves with every posting, in the same transaction (store.ledger).
    total: Decimal | None = await session.scalar(
        select(balances.c.balance).where(balances.c.ledger_account == ledger_account)
    )
    return total if total is not None else ZERO


async def balances_of(session: AsyncSession, ledger_accounts: Sequence[str]) -> dict[str, Decimal]:
    """Return the balance of each named ledger account that has one, in one query."""
    if not ledger_accounts:
        return {}
    rows = await session.execute(
        select(balances.c.ledger_account, balances.c.balance).where(
            bulk.one_of(session, balances.c.ledger_account, ledger_accounts)
        )
    )
    return {name: balance for name, balance in rows.all()}


async def account_balances(
    session: AsyncSession, account_ids: Sequence[str]
) -> dict[str, tuple[Decimal, Decimal]]:
    """Return (balance, arrears) of each account, in one query."""
    names = [ledger.tenant_ledger(a) for a in account_ids]
    names += [ledger.arrears_ledger(a) for a in account_ids]
    known = await balances_of(session, names)
    return {
        a: (
            known.get(ledger.tenant_ledger(a), ZERO),
            known.get(ledger.arrears_ledger(a), ZERO),
        )
        for a in account_ids
    }
