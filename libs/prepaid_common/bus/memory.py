"""In-process bus for the standalone mode.

``publish`` waits until every matching subscription has handled the message, so the
outbox row that fed it is deleted only after the consumers committed: a crash at any
instant leaves the row in place and the relay publishes it again (consumers are
idempotent).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from prepaid_common.bus.base import (
    MAX_DELIVERIES,
    BatchHandler,
    Handler,
    Subscription,
    topic_matches,
)
from prepaid_common.contracts import Envelope

log = logging.getLogger(__name__)


class InProcessBus:
    """Deliver to subscriptions in this process, one message at a time per queue."""

    def __init__(self, *, retry_delay: float = 0.05) -> None:
        self._subscriptions: list[Subscription] = []
        self._locks: dict[str, asyncio.Lock] = {}
        self._retry_delay = retry_delay
        self.dead_letters: list[tuple[str, Envelope, str]] = []

    def subscribe(self, queue: str, bindings: Sequence[str], handler: Handler) -> None:
        self._subscriptions.append(Subscription(queue, tuple(bindings), handler))
        self._locks[queue] = asyncio.Lock()

    def subscribe_batch(
        self,
        queue: str,
        bindings: Sequence[str],
        handler: BatchHandler,
        *,
        max_batch: int = 500,
        max_wait: float = 0.05,
    ) -> None:
        # publish() returns only after the subscriber committed, so nothing ever queues up
        # here: each batch holds the one message being published.
        async def one(envelope: Envelope) -> None:
            await handler([envelope])

        self.subscribe(queue, bindings, one)

    async def start(self) -> None:
        return None

    async def publish(self, envelope: Envelope) -> None:
        for subscription in self._subscriptions:
            if any(topic_matches(p, envelope.routing_key) for p in subscription.bindings):
                async with self._locks[subscription.queue]:
                    await self._deliver(subscription, envelope)

    async def _deliver(self, subscription: Subscription, envelope: Envelope) -> None:
        for attempt in range(1, MAX_DELIVERIES + 1):
            try:
                await subscription.handler(envelope)
                return
            except Exception as error:
                log.warning(
                    "handler failed",
                    extra={
                        "queue": subscription.queue,
                        "message_id": envelope.message_id,
                        "attempt": attempt,
                        "error": repr(error),
                    },
                )
                if attempt == MAX_DELIVERIES:
                    log.error(
                        "message dead-lettered",
                        extra={"queue": subscription.queue, "message_id": envelope.message_id},
                    )
                    self.dead_letters.append((subscription.queue, envelope, repr(error)))
                    return
                await asyncio.sleep(self._retry_delay * attempt)

    async def close(self) -> None:
        return None
