"""The notifications service: hears the other services' facts, tells people and systems."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx
from fastapi import APIRouter
from prepaid_common.bus import Handler, MessageBus
from prepaid_common.service import Service
from sqlalchemy.ext.asyncio import AsyncEngine

from notifications import api
from notifications.channels import Sender
from notifications.domain.delivery import Backoff
from notifications.domain.facts import TOPICS
from notifications.handlers import Audience, NotificationHandlers
from notifications.operations import dispatch, webhooks
from notifications.tables import metadata, plumbing

log = logging.getLogger(__name__)


class NotificationsService(Service):
    name = "notifications"
    migrations_dir = Path(__file__).parent / "migrations"
    tables = plumbing
    metadata = metadata

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        bus: MessageBus,
        senders: Mapping[str, Sender],
        audience: Audience,
        message_backoff: Backoff,
        webhook_backoff: Backoff,
        webhook_http: httpx.AsyncClient,
        dispatch_interval_seconds: float = 1.0,
    ) -> None:
        super().__init__(engine=engine, bus=bus)
        self.senders = dict(senders)
        self.handlers = NotificationHandlers(audience)
        self.message_backoff = message_backoff
        self.webhook_backoff = webhook_backoff
        self.webhook_http = webhook_http
        self.dispatch_interval_seconds = dispatch_interval_seconds

    def subscriptions(self) -> Sequence[tuple[str, Sequence[str], Handler]]:
        return (
            (
                "events",
                [f"{topic}.#" for topic in TOPICS],
                self.store.idempotent(self.handlers.on_event),
            ),
        )

    def routers(self) -> Sequence[APIRouter]:
        return [api.internal_router(self.store, self.senders)]

    async def background(self) -> Sequence[asyncio.Task[None]]:
        return (asyncio.create_task(self._dispatch_forever(), name="notifications-dispatch"),)

    async def dispatch_once(self) -> int:
        """Send the due messages and deliveries once; return how many were attempted."""
        sent = await dispatch.send_due(self.store, self.senders, self.message_backoff)
        delivered = await webhooks.deliver_due(self.store, self.webhook_http, self.webhook_backoff)
        return sent + delivered

    async def _dispatch_forever(self) -> None:
        while True:
            try:
                busy = await self.dispatch_once()
            except Exception:
                # One bad round (the database away, say) must not end the dispatcher.
                log.exception("notifications dispatch round failed")
                busy = 0
            if not busy:
                await asyncio.sleep(self.dispatch_interval_seconds)

    async def stop(self) -> None:
        """Stop the loops and the relay, then close the providers' clients."""
        await super().stop()
        for sender in self.senders.values():
            with contextlib.suppress(Exception):
                await sender.aclose()
        with contextlib.suppress(Exception):
            await self.webhook_http.aclose()
