"""Outbound webhooks: subscriptions (the secret shown once), signed deliveries with retries
and back-off, the delivery log, replay."""

from __future__ import annotations

import json
import logging
import secrets
import time
import uuid
from datetime import timedelta
from typing import Any

import httpx
from prepaid_common.contracts import utcnow
from prepaid_common.contracts.api.notifications import (
    WebhookDeliveryPage,
    WebhookDeliveryView,
    WebhookSubscriptionBody,
    WebhookSubscriptionCreated,
    WebhookSubscriptionList,
)
from prepaid_common.errors import NotFound
from prepaid_common.outbox import ServiceStore

from notifications.domain.delivery import Backoff
from notifications.domain.signing import (
    WEBHOOK_DELIVERY_HEADER,
    WEBHOOK_EVENT_HEADER,
    WEBHOOK_SIGNATURE_HEADER,
    WEBHOOK_TIMESTAMP_HEADER,
    webhook_signature,
)
from notifications.metrics import WEBHOOKS
from notifications.store import webhooks as webhook_store

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=2)


async def subscribe(
    store: ServiceStore, body: WebhookSubscriptionBody, *, operator: str
) -> WebhookSubscriptionCreated:
    """Add a subscription with a new secret; the answer is the one place the secret shows."""
    secret = "whsec_" + secrets.token_urlsafe(32)
    events = sorted(set(body.events))
    row: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "url": str(body.url),
        "events": json.dumps(events),
        "description": body.description,
        "secret": secret,
        "active": True,
        "created_at": utcnow(),
        "created_by": operator,
    }
    async with store.unit_of_work() as uow:
        await webhook_store.add_subscription(uow.session, row)
    return WebhookSubscriptionCreated.model_validate({**row, "events": events, "secret": secret})


async def subscriptions(store: ServiceStore) -> WebhookSubscriptionList:
    async with store.sessionmaker() as session:
        return WebhookSubscriptionList(items=await webhook_store.list_subscriptions(session))


async def unsubscribe(store: ServiceStore, subscription_id: str) -> None:
    async with store.unit_of_work() as uow:
        if not await webhook_store.deactivate(uow.session, subscription_id):
            raise NotFound(f"no webhook subscription {subscription_id}")


async def delivery_log(
    store: ServiceStore, subscription_id: str, *, limit: int, offset: int
) -> WebhookDeliveryPage:
    async with store.sessionmaker() as session:
        if await webhook_store.subscription(session, subscription_id) is None:
            raise NotFound(f"no webhook subscription {subscription_id}")
        items = await webhook_store.page(session, subscription_id, limit=limit, offset=offset)
    return WebhookDeliveryPage(items=items, limit=limit, offset=offset)


async def replay(
    store: ServiceStore, subscription_id: str, delivery_id: str
) -> WebhookDeliveryView:
    """Send a delivery again (delivered, failed or pending): it becomes due now, with a new
    count of attempts; the body and the event id stay as they were."""
    async with store.unit_of_work() as uow:
        row = await webhook_store.delivery(uow.session, delivery_id)
        if row is None or row.subscription_id != subscription_id:
            raise NotFound(f"no delivery {delivery_id} of subscription {subscription_id}")
        subscription = await webhook_store.subscription(uow.session, subscription_id)
        if subscription is None or not subscription.active:
            raise NotFound(f"no webhook subscription {subscription_id}")
        await webhook_store.settle(
            uow.session, delivery_id, status="pending", attempts=0, next_attempt_at=utcnow()
        )
        row = await webhook_store.delivery(uow.session, delivery_id)
    assert row is not None  # read back in the same transaction
    return WebhookDeliveryView.model_validate(dict(row._mapping))


async def deliver_due(
    store: ServiceStore, http: httpx.AsyncClient, backoff: Backoff, *, limit: int = 50
) -> int:
    """POST the due deliveries, signed; return how many were attempted."""
    now = utcnow()
    async with store.sessionmaker() as session:
        due = await webhook_store.due_deliveries(session, now=now, limit=limit)
    attempted = 0
    for row in due:
        async with store.unit_of_work() as uow:
            taken = await webhook_store.claim(
                uow.session, row.id, seen_at=row.next_attempt_at, lease=LEASE, now=now
            )
        if taken:
            attempted += 1
            await _post(store, http, backoff, row)
    return attempted


def signed_headers(
    secret: str, *, event_type: str, delivery_id: str, body: bytes
) -> dict[str, str]:
    """The headers of one delivery: the timestamp, and the signature over ``timestamp.body``."""
    timestamp = int(time.time())
    return {
        "Content-Type": "application/json",
        WEBHOOK_TIMESTAMP_HEADER: str(timestamp),
        WEBHOOK_SIGNATURE_HEADER: webhook_signature(secret, timestamp, body),
        WEBHOOK_EVENT_HEADER: event_type,
        WEBHOOK_DELIVERY_HEADER: delivery_id,
    }


async def _post(store: ServiceStore, http: httpx.AsyncClient, backoff: Backoff, row: Any) -> None:
    body = row.body.encode()
    attempts = int(row.attempts) + 1
    headers = signed_headers(row.secret, event_type=row.event_type, delivery_id=row.id, body=body)
    status: int | None = None
    try:
        answer = await http.post(row.url, content=body, headers=headers)
        status = answer.status_code
        error = "" if 200 <= status < 300 else f"HTTP {status}: {answer.text[:200]}"
    except httpx.HTTPError as failure:
        error = f"unreachable: {type(failure).__name__}"
    now = utcnow()
    async with store.unit_of_work() as uow:
        if not error:
            WEBHOOKS.labels("delivered").inc()
            await webhook_store.settle(
                uow.session,
                row.id,
                status="delivered",
                attempts=attempts,
                response_status=status,
                last_error="",
                delivered_at=now,
            )
            return
        delay = backoff.delay(attempts)
        WEBHOOKS.labels("retry" if delay is not None else "failed").inc()
        log.warning(
            "webhook not delivered",
            extra={"delivery_id": row.id, "attempts": attempts, "error": error},
        )
        await webhook_store.settle(
            uow.session,
            row.id,
            status="pending" if delay is not None else "failed",
            attempts=attempts,
            response_status=status,
            last_error=error,
            next_attempt_at=now + delay if delay is not None else now,
        )
