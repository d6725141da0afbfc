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
from functools import partial

from prepaid_common.bus.base import (
    MAX_DELIVERIES,
    BatchHandler,
    BatchSubscription,
    Handler,
    Subscription,
    Weigh,
    topic_matches,
)
from prepaid_common.bus.metrics import DEAD_LETTERED
from prepaid_common.bus.retrying import (
    Outage,
    Outcome,
    RetryPolicy,
    handle_with_retries,
)
from prepaid_common.contracts import Envelope

log = logging.getLogger(__name__)


class InProcessBus:
    """Deliver to subscriptions in this process, one message at a time per queue."""

    def __init__(self, *, retry_delay: float = 0.05) -> None:
        self._subscriptions: list[Subscription] = []
        self._locks: dict[str, asyncio.Lock] = {}
        self._batches: dict[str, BatchSubscription] = {}
        # MAX_DELIVERIES attempts in all, the n-th retry after n * retry_delay.
        self._retry = RetryPolicy(
            poison_delays=tuple(retry_delay * n for n in range(1, MAX_DELIVERIES))
        )
        self._outages: dict[str, Outage] = {}
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
        weigh: Weigh | None = None,
        prefetch: int | None = None,  # nothing is prefetched in process
        single_active_consumer: bool = False,  # one process: one consumer anyway
    ) -> None:
        # publish() returns only after the subscriber committed, so nothing ever queues up
        # here: each batch holds the message being published, or up to max_batch items of
        # the messages given to publish_many.
        async def one(envelope: Envelope) -> None:
            await handler([envelope])

        self.subscribe(queue, bindings, one)
        self._batches[queue] = BatchSubscription(
            queue, tuple(bindings), handler, max_batch, max_wait, weigh
        )

    async def start(self) -> None:
        return None

    async def publish(self, envelope: Envelope) -> None:
        for subscription in self._subscriptions:
            if any(topic_matches(p, envelope.routing_key) for p in subscription.bindings):
                async with self._locks[subscription.queue]:
                    await self._deliver(subscription, envelope)

    async def publish_many(self, envelopes: Sequence[Envelope]) -> None:
        """Deliver in order; a batch subscription gets them in batches, one call each.

        A batch that fails is delivered again one message at a time, as the broker adapter
        does, so that a poison message is dead-lettered alone.
        """
        for subscription in self._subscriptions:
            matching = [
                envelope
                for envelope in envelopes
                if any(topic_matches(p, envelope.routing_key) for p in subscription.bindings)
            ]
            if not matching:
                continue
            async with self._locks[subscription.queue]:
                batch = self._batches.get(subscription.queue)
                if batch is None:
                    for envelope in matching:
                        await self._deliver(subscription, envelope)
                    continue
                for chunk in _chunks(matching, batch):
                    try:
                        await batch.handler(chunk)
                    except Exception as error:
                        log.warning(
                            "batch handler failed; delivering one at a time",
                            extra={"queue": subscription.queue, "error": repr(error)},
                        )
                        for envelope in chunk:
                            await self._deliver(subscription, envelope)

    async def _deliver(self, subscription: Subscription, envelope: Envelope) -> None:
        try:
            await subscription.handler(envelope)
            return
        except Exception as error:
            first_error = error
        # A dependency that is down is waited for; a poison message gets bounded attempts.
        outage = self._outages.setdefault(subscription.queue, Outage(subscription.queue))
        outcome = await handle_with_retries(
            partial(subscription.handler, envelope),
            outage=outage,
            policy=self._retry,
            describe=envelope.message_id,
            first_error=first_error,
        )
        if outcome is Outcome.POISON:
            log.error(
                "message dead-lettered",
                extra={"queue": subscription.queue, "message_id": envelope.message_id},
            )
            DEAD_LETTERED.labels(subscription.queue, "failed").inc()
            self.dead_letters.append((subscription.queue, envelope, repr(first_error)))

    async def close(self) -> None:
        return None

    async def check(self) -> None:
        """The in-process bus is always there."""
        return None


def _chunks(envelopes: list[Envelope], subscription: BatchSubscription) -> list[list[Envelope]]:
    """Split in order into batches; a batch takes no more once it holds ``max_batch`` items."""
    chunks: list[list[Envelope]] = [[]]
    size = 0
    for envelope in envelopes:
        if size >= subscription.max_batch:
            chunks.append([])
            size = 0
        chunks[-1].append(envelope)
        size += subscription.weight(envelope)
    return chunks
