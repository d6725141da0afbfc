"""RabbitMQ adapter (aio-pika): durable quorum queues, persistent messages, publisher
confirms, ack after the handler (and its database commit), dead-letter queue."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)

from prepaid_common.bus.base import MAX_DELIVERIES, Handler, Subscription
from prepaid_common.contracts import Envelope

log = logging.getLogger(__name__)


class RabbitBus:
    """Topic exchange ``<prefix>.events``; one quorum queue per subscription."""

    def __init__(self, url: str, *, prefix: str = "prepaid", prefetch: int = 64) -> None:
        self._url = url
        self._prefix = prefix
        self._prefetch = prefetch
        self._subscriptions: list[Subscription] = []
        self._connection: AbstractRobustConnection | None = None
        self._publish_channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._consumers: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self.declared: list[tuple[str, str]] = []

    @property
    def exchange_name(self) -> str:
        return f"{self._prefix}.events"

    @property
    def dead_letter_queue(self) -> str:
        return f"{self._prefix}.dead-letters"

    def queue_name(self, queue: str) -> str:
        return f"{self._prefix}.{queue}"

    def subscribe(self, queue: str, bindings: Sequence[str], handler: Handler) -> None:
        self._subscriptions.append(Subscription(queue, tuple(bindings), handler))

    async def start(self) -> None:
        self._connection = await aio_pika.connect_robust(self._url)
        # Publisher confirms are on by default: publish() returns after the broker's ack.
        self._publish_channel = await self._connection.channel()
        self._exchange = await self._publish_channel.declare_exchange(
            self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
        )
        dead_exchange = await self._publish_channel.declare_exchange(
            f"{self._prefix}.dead", aio_pika.ExchangeType.FANOUT, durable=True
        )
        dead_queue = await self._publish_channel.declare_queue(
            self.dead_letter_queue, durable=True, arguments={"x-queue-type": "quorum"}
        )
        await dead_queue.bind(dead_exchange)
        self.declared += [
            ("exchange", self.exchange_name),
            ("exchange", f"{self._prefix}.dead"),
            ("queue", self.dead_letter_queue),
        ]
        for subscription in self._subscriptions:
            channel = await self._connection.channel()
            await channel.set_qos(prefetch_count=self._prefetch)
            queue = await channel.declare_queue(
                self.queue_name(subscription.queue),
                durable=True,
                arguments={
                    "x-queue-type": "quorum",
                    "x-dead-letter-exchange": f"{self._prefix}.dead",
                    "x-delivery-limit": MAX_DELIVERIES,
                },
            )
            for pattern in subscription.bindings:
                await queue.bind(self.exchange_name, routing_key=pattern)
            self.declared.append(("queue", queue.name))
            self._consumers.append(asyncio.create_task(self._consume(queue, subscription)))

    async def _consume(self, queue: AbstractQueue, subscription: Subscription) -> None:
        # The iterator hands over one message at a time: per-queue order is kept.
        async with queue.iterator() as messages:
            async for message in messages:
                await self._handle(message, subscription)
                if self._stopping.is_set():
                    return

    async def _handle(self, message: AbstractIncomingMessage, subscription: Subscription) -> None:
        try:
            envelope = Envelope.from_bytes(message.body)
        except ValueError:
            log.error("unparseable message dead-lettered", extra={"queue": subscription.queue})
            await message.reject(requeue=False)
            return
        try:
            await subscription.handler(envelope)
        except Exception as error:
            log.warning(
                "handler failed; message will be redelivered",
                extra={
                    "queue": subscription.queue,
                    "message_id": envelope.message_id,
                    "error": repr(error),
                },
            )
            await message.reject(requeue=True)
            return
        await message.ack()

    async def publish(self, envelope: Envelope) -> None:
        if self._exchange is None:
            raise RuntimeError("bus not started")
        await self._exchange.publish(
            aio_pika.Message(
                envelope.to_bytes(),
                message_id=envelope.message_id,
                type=envelope.type,
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=envelope.routing_key,
        )

    async def delete_topology(self) -> None:
        """Delete every queue and exchange this bus declared (tests and teardown tools)."""
        connection = await aio_pika.connect(self._url)
        async with connection:
            channel = await connection.channel()
            for kind, name in reversed(self.declared):
                if kind == "queue":
                    await channel.queue_delete(name)
                else:
                    await channel.exchange_delete(name)

    async def close(self) -> None:
        self._stopping.set()
        for task in self._consumers:
            task.cancel()
        for task in self._consumers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._consumers.clear()
        if self._connection is not None:
            await self._connection.close()
            self._connection = None
