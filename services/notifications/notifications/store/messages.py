"""The record of messages: added once per (episode, channel, address), claimed when due,
settled with the provider's answer."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from prepaid_common.contracts.api.notifications import NotificationView
from sqlalchemy import and_, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from notifications.tables import messages


async def add_message(session: AsyncSession, row: dict[str, Any]) -> bool:
    """Add a message unless its dedup key is known; return whether it was added."""
    known = await session.scalar(
        select(messages.c.id).where(messages.c.dedup_key == row["dedup_key"])
    )
    if known is not None:
        return False
    await session.execute(insert(messages).values(**row))
    return True


async def due_messages(session: AsyncSession, *, now: datetime, limit: int) -> list[Any]:
    """Return pending messages whose time has come, oldest first."""
    rows = await session.execute(
        select(messages)
        .where(messages.c.status == "pending", messages.c.next_attempt_at <= now)
        .order_by(messages.c.next_attempt_at)
        .limit(limit)
    )
    return list(rows.all())


async def claim(
    session: AsyncSession, message_id: str, *, seen_at: datetime, lease: timedelta, now: datetime
) -> bool:
    """Take a due message for one sender: its next attempt moves past the lease, unless
    another replica moved it first (then False)."""
    result = await session.execute(
        update(messages)
        .where(
            and_(
                messages.c.id == message_id,
                messages.c.status == "pending",
                messages.c.next_attempt_at == seen_at,
            )
        )
        .values(next_attempt_at=now + lease)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def settle(session: AsyncSession, message_id: str, **values: Any) -> None:
    await session.execute(update(messages).where(messages.c.id == message_id).values(**values))


def view(row: Any) -> NotificationView:
    data = dict(row._mapping)
    data.pop("dedup_key")
    data.pop("params")
    return NotificationView.model_validate(data)


async def page(
    session: AsyncSession,
    *,
    recipient: str | None,
    kind: str | None,
    status: str | None,
    limit: int,
    offset: int,
) -> list[NotificationView]:
    query = select(messages)
    if recipient is not None:
        query = query.where(messages.c.recipient == recipient)
    if kind is not None:
        query = query.where(messages.c.kind == kind)
    if status is not None:
        query = query.where(messages.c.status == status)
    rows = await session.execute(
        query.order_by(messages.c.created_at.desc(), messages.c.id).limit(limit).offset(offset)
    )
    return [view(row) for row in rows.all()]


def params_json(params: tuple[tuple[str, str], ...]) -> str:
    return json.dumps([list(pair) for pair in params], ensure_ascii=False)


def params_of(text: str) -> dict[str, str]:
    return {name: value for name, value in json.loads(text)}
