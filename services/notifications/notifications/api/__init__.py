"""Notifications' internal API: the routes the gateway calls."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import APIRouter, Query
from prepaid_common.contracts.api.notifications import (
    NotificationChannelState,
    NotificationKind,
    NotificationPage,
    NotificationPreferences,
    NotificationPreferencesView,
    WebhookDeliveryPage,
    WebhookDeliveryView,
    WebhookSubscriptionBody,
    WebhookSubscriptionCreated,
    WebhookSubscriptionList,
)
from prepaid_common.contracts.identifiers import Identifier
from prepaid_common.outbox import ServiceStore

from notifications.channels import Sender
from notifications.domain.kinds import CHANNELS
from notifications.operations import records, webhooks


def internal_router(store: ServiceStore, senders: Mapping[str, Sender]) -> APIRouter:
    router = APIRouter(prefix="/internal")

    @router.get("/channels")
    async def channels() -> list[NotificationChannelState]:
        return [
            NotificationChannelState(
                channel=channel,
                provider=senders[channel].provider if channel in senders else "",
                enabled=channel in senders,
            )
            for channel in CHANNELS
        ]

    @router.get("/notifications")
    async def notifications(
        recipient: str | None = Query(default=None, max_length=64),
        kind: NotificationKind | None = None,
        status: str | None = Query(default=None, pattern="^(pending|sent|failed)$"),
        limit: int = Query(default=50, ge=1, le=500),
        offset: int = Query(default=0, ge=0),
    ) -> NotificationPage:
        return await records.notifications_page(
            store, recipient=recipient, kind=kind, status=status, limit=limit, offset=offset
        )

    @router.get("/preferences/{account_id}")
    async def preferences(account_id: Identifier) -> NotificationPreferencesView:
        return await records.preferences_of(store, account_id)

    @router.put("/preferences/{account_id}")
    async def set_preferences(
        account_id: Identifier, body: NotificationPreferences
    ) -> NotificationPreferencesView:
        return await records.set_preferences(store, account_id, body)

    @router.post("/webhook-subscriptions", status_code=201)
    async def subscribe(
        body: WebhookSubscriptionBody, operator: str = Query(min_length=1, max_length=64)
    ) -> WebhookSubscriptionCreated:
        return await webhooks.subscribe(store, body, operator=operator)

    @router.get("/webhook-subscriptions")
    async def subscriptions() -> WebhookSubscriptionList:
        return await webhooks.subscriptions(store)

    @router.delete("/webhook-subscriptions/{subscription_id}", status_code=204)
    async def unsubscribe(subscription_id: str) -> None:
        await webhooks.unsubscribe(store, subscription_id)

    @router.get("/webhook-subscriptions/{subscription_id}/deliveries")
    async def deliveries(
        subscription_id: str,
        limit: int = Query(default=50, ge=1, le=500),
        offset: int = Query(default=0, ge=0),
    ) -> WebhookDeliveryPage:
        return await webhooks.delivery_log(store, subscription_id, limit=limit, offset=offset)

    @router.post("/webhook-subscriptions/{subscription_id}/deliveries/{delivery_id}/replay")
    async def replay(subscription_id: str, delivery_id: str) -> WebhookDeliveryView:
        return await webhooks.replay(store, subscription_id, delivery_id)

    return router
