"""The one lock order of billing's transactions on PostgreSQL: an account's meter rows
(by meter id), then its account row, then balance rows (by ledger account).

Rating a batch of readings locks the meters first (store/meters.bindings_for_rating), then
moves balances and may update the account (the warning flag). A money movement that moved
the balance first and then switched supply (a refund, a top-up: ``billing_meters.supply``)
took the same rows the other way round, and PostgreSQL broke the cycle by failing one of
them ("deadlock detected", seen as a 503 on a refund under 10,000 polled meters). Every
movement through ``ledger.post`` and every account lock therefore takes the account's meter
rows first. The balance rows themselves go a tenant's first (balance, arrears), then the
house accounts' (revenue, clearing) at the very end of the transaction, summed over its
postings (store/ledger.py): every batch of readings moves ``revenue:energy``, and that one
row held through a batch's remaining work made concurrent batches queue on it. SQLite
serialises whole transactions and ignores FOR UPDATE.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.tables import accounts, meters


async def lock_meters_of(session: AsyncSession, account_ids: Iterable[str]) -> None:
    """Hold the meter rows of these accounts until the transaction ends, in meter order."""
    wanted = sorted(set(account_ids))
    if not wanted:
        return
    await session.execute(
        select(meters.c.meter_id)
        .where(meters.c.account_id.in_(wanted))
        .order_by(meters.c.meter_id)
        .with_for_update()
    )


async def lock_account(session: AsyncSession, account_id: str) -> None:
    """Hold the account (its meters first, then its row) until the transaction ends: cap
    checks and credits queue up behind each other and behind the account's readings."""
    await lock_meters_of(session, [account_id])
    await session.execute(
        select(accounts.c.id).where(accounts.c.id == account_id).with_for_update()
    )
