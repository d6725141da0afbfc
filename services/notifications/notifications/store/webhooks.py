"""Webhook subscriptions and their deliveries."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from prepaid_common.contracts.api.notifications import (
    WebhookDeliveryView,
    WebhookSubscriptionView,
)
from sqlalchemy import and_, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from notifications.tables import deliveries, subscriptions


def subscription_view(row: Any) -> WebhookSubscriptionView:
    data = dict(row._mapping)
    data.pop("secret")
    data["events"] = json.loads(data["events"])
    return WebhookSubscriptionView.model_validate(data)


async def add_subscription(session: AsyncSession, row: dict[str, Any]) -> None:
    await session.execute(insert(subscriptions).values(**row))


async def active_subscriptions(session: AsyncSession) -> list[Any]:
    rows = await session.execute(select(subscriptions).where(subscriptions.c.active))
    return list(rows.all())


async def subscription(session: AsyncSession, subscription_id: str) -> Any | None:
    return (
        await session.execute(select(subscriptions).where(subscriptions.c.id == subscription_id))
    ).first()


async def list_subscriptions(session: AsyncSession) -> list[WebhookSubscriptionView]:
    rows = await session.execute(
        select(subscriptions)
        .where(subscriptions.c.active)
        .order_by(subscriptions.c.created_at, subscriptions.c.id)
    )
    return [subscription_view(row) for row in rows.all()]


async def deactivate(session: AsyncSession, subscription_id: str) -> bool:
    """Stop a subscription (its deliveries stay in the log; pending ones are not sent)."""
    result = await session.execute(
        update(subscriptions)
        .where(subscriptions.c.id == subscription_id, subscriptions.c.active)
        .values(active=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def add_delivery(session: AsyncSession, row: dict[str, Any]) -> bool:
    """Add a delivery unless the subscription already has this event; return if added."""
    known = await session.scalar(
        select(deliveries.c.id).where(
            deliveries.c.subscription_id == row["subscription_id"],
            deliveries.c.event_id == row["event_id"],
        )
    )
    if known is not None:
        return False
    await session.execute(insert(deliveries).values(**row))
    return True


async def due_deliveries(session: AsyncSession, *, now: datetime, limit: int) -> list[Any]:
    rows = await session.execute(
        select(deliveries, subscriptions.c.url, subscriptions.c.secret)
        .join(subscriptions, subscriptions.c.id == deliveries.c.subscription_id)
        .where(
            deliveries.c.status == "pending",
            deliveries.c.next_attempt_at <= now,
            subscriptions.c.active,
        )
        .order_by(deliveries.c.next_attempt_at)
        .limit(limit)
    )
    return list(rows.all())


async def claim(
    session: AsyncSession, delivery_id: str, *, seen_at: datetime, lease: timedelta, now: datetime
) -> bool:
    result = await session.execute(
        update(deliveries)
        .where(
            and_(
                deliveries.c.id == delivery_id,
                deliveries.c.status == "pending",
                deliveries.c.next_attempt_at == seen_at,
            )
        )
        .values(next_attempt_at=now + lease)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def settle(session: AsyncSession, delivery_id: str, **values: Any) -> None:
    await session.execute(update(deliveries).where(deliveries.c.id == delivery_id).values(**values))


async def delivery(session: AsyncSession, delivery_id: str) -> Any | None:
    return (await session.execute(select(deliveries).where(deliveries.c.id == delivery_id))).first()


async def page(
    session: AsyncSession, subscription_id: str, *, limit: int, offset: int
) -> list[WebhookDeliveryView]:
    rows = await session.execute(
        select(deliveries)
        .where(deliveries.c.subscription_id == subscription_id)
        .order_by(deliveries.c.created_at.desc(), deliveries.c.id)
        .limit(limit)
        .offset(offset)
    )
    return [WebhookDeliveryView.model_validate(dict(row._mapping)) for row in rows.all()]
