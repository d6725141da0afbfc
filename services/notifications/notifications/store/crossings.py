"""Open crossings of an account's levels: one message per crossing, not per reading."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from notifications.domain.facts import Crossing, Rearm
from notifications.tables import crossings


async def open_crossing(session: AsyncSession, crossing: Crossing, *, now: datetime) -> int | None:
    """Open a crossing; return its episode number, or None when it is open already."""
    row = (
        await session.execute(
            select(crossings.c.open, crossings.c.count).where(
                crossings.c.account_id == crossing.account_id,
                crossings.c.topic == crossing.topic,
            )
        )
    ).first()
    line = None if crossing.line is None else str(crossing.line)
    if row is None:
        await session.execute(
            insert(crossings).values(
                account_id=crossing.account_id,
                topic=crossing.topic,
                line=line,
                open=True,
                count=1,
                opened_at=now,
            )
        )
        return 1
    is_open, told = row[0], int(row[1])  # by position: a Row's .count is a tuple method
    if is_open:
        return None
    count = told + 1
    await session.execute(
        update(crossings)
        .where(crossings.c.account_id == crossing.account_id, crossings.c.topic == crossing.topic)
        .values(open=True, count=count, line=line, opened_at=now)
    )
    return count


async def rearm(session: AsyncSession, rearm: Rearm) -> None:
    """Close the account's crossings that ``rearm`` says are over."""
    rows = await session.execute(
        select(crossings.c.topic, crossings.c.line).where(
            crossings.c.account_id == rearm.account_id, crossings.c.open
        )
    )
    over = [
        row.topic
        for row in rows.all()
        if row.topic in rearm.topics
        or (
            rearm.balance is not None and row.line is not None and rearm.balance > Decimal(row.line)
        )
    ]
    if over:
        await session.execute(
            update(crossings)
            .where(crossings.c.account_id == rearm.account_id, crossings.c.topic.in_(over))
            .values(open=False)
        )
