"""Top-up holds: headroom under the cap kept for cash about to be taken, per receipt."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from billing.domain.money import ZERO
from billing.store import locks
from billing.tables import top_up_holds


async def lock_account(session: AsyncSession, account_id: str) -> None:
    """Hold the account's row (and, before it, its meters': store/locks.py) until the
    transaction ends: cap checks and credits queue up."""
    await locks.lock_account(session, account_id)


async def hold_exists(session: AsyncSession, account_id: str, key: str) -> bool:
    """Whether a top-up under this receipt was already let through for the account."""
    found = await session.scalar(
        select(top_up_holds.c.key).where(
            top_up_holds.c.account_id == account_id, top_up_holds.c.key == key
        )
    )
    return found is not None


async def pending_total(session: AsyncSession, account_id: str, *, now: datetime) -> Decimal:
    """Return the cash let through but not yet credited (holds not expired)."""
    total: Decimal | None = await session.scalar(
        select(func.sum(top_up_holds.c.amount)).where(
            top_up_holds.c.account_id == account_id,
            top_up_holds.c.credited.is_(False),
            top_up_holds.c.expires_at > now,
        )
    )
    return total if total is not None else ZERO


async def insert_hold(
    session: AsyncSession,
    *,
    account_id: str,
    key: str,
    amount: Decimal,
    now: datetime,
    expires_at: datetime,
) -> None:
    """Hold headroom for a top-up about to be taken."""
    await session.execute(
        insert(top_up_holds).values(
            account_id=account_id,
            key=key,
            amount=amount,
            credited=False,
            created_at=now,
            expires_at=expires_at,
        )
    )


async def mark_credited(session: AsyncSession, account_id: str, key: str) -> None:
    """The held top-up is now in the balance: stop counting its hold."""
    await session.execute(
        update(top_up_holds)
        .where(top_up_holds.c.account_id == account_id, top_up_holds.c.key == key)
        .values(credited=True)
    )
