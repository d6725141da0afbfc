"""RabbitMQ adapter (aio-pika): durable quorum queues, persistent messages, publisher
confirms, ack after the handler (and its database commit), dead-letter queue."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from functools import partial
from typing import cast

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)

from prepaid_common.bus.amqp_consumer import AmqpLinkClosed, ConsumerLink, Delivery
from prepaid_common.bus.base import (
    MAX_DELIVERIES,
    RELEASE_NEXT_BATCH,
    BatchHandler,
    BatchSubscription,
    Handler,
    PublishFailed,
    Subscription,
    Weigh,
)
from prepaid_common.bus.metrics import DEAD_LETTER_QUEUE, DEAD_LETTERED
from prepaid_common.bus.retrying import (
    Outage,
    Outcome,
    RetryPolicy,
    handle_with_retries,
)
from prepaid_common.contracts import Envelope
from prepaid_common.failures import is_infrastructure_failure

log = logging.getLogger(__name__)

# How often each process looks at the dead-letter queue's size for its gauge.
DEAD_LETTER_WATCH_SECONDS = 30.0

# Batch consumers read their queue through their own lean connection (amqp_consumer):
# aiormq's frame handling was about a third of the CPU billing spent per reading.


async def _settle(
    delivery: Delivery, *, ack: bool, multiple: bool = False, requeue: bool = True
) -> None:
    """Ack or reject on the connection the delivery came on.

    After a reconnect that connection is gone and the broker has already put its unacked
    messages back; they come again and the idempotent consumer skips what it committed.
    """
    link = delivery.link
    if ack:
        sent = link.ack(delivery.delivery_tag, multiple=multiple)
    else:
        sent = link.reject(delivery.delivery_tag, requeue=requeue)
    if not sent:
        log.warning("could not settle a delivery; the broker redelivers it")


async def _settle_message(message: AbstractIncomingMessage, *, reject: bool = False) -> None:
    """Ack, or reject to the dead-letter queue, a message of an aio-pika subscription.

    On a channel that has closed since, nothing can be sent and nothing needs to be: the
    broker has put the message back and delivers it again.
    """
    try:
        if reject:
            await message.reject(requeue=False)
        else:
            await message.ack()
    except Exception as error:
        if not is_infrastructure_failure(error):
            raise
        log.warning("could not settle a delivery; the broker redelivers it")


def _is_open(link: ConsumerLink) -> Callable[[], bool]:
    """Whether a delivery of ``link`` can still be settled (else the broker has it back)."""
    return lambda: link.is_open


def _weight(delivery: Delivery, subscription: BatchSubscription) -> int:
    """How much of a batch a delivery takes; parsed here once when the weight needs it."""
    if subscription.weigh is None:
        return 1
    try:
        delivery.envelope = Envelope.from_bytes(delivery.body)
    except ValueError:
        return 1  # dead-lettered when its batch is handled
    return subscription.weight(delivery.envelope)


class RabbitBus:
    """Topic exchange ``<prefix>.events``; one quorum queue per subscription."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "prepaid",
        prefetch: int = 64,
        retry: RetryPolicy | None = None,
        drain_seconds: float = 10.0,
    ) -> None:
        self._url = url
        # On close, how long the messages in hand may take to finish (commit and ack).
        self._drain_seconds = drain_seconds
        self._in_hand = 0
        self._drained = asyncio.Event()
        self._retry = retry or RetryPolicy()
        self._outages: dict[str, Outage] = {}
        self._prefix = prefix
        self._prefetch = prefetch
        self._subscriptions: list[Subscription] = []
        self._batch_subscriptions: list[BatchSubscription] = []
        self._connection: AbstractRobustConnection | None = None
        self._publish_channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._consumers: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self.declared: list[tuple[str, str]] = []

    @property
    def url(self) -> str:
        return self._url

    @property
    def prefix(self) -> str:
        return self._prefix

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

    def subscribe_batch(
        self,
        queue: str,
        bindings: Sequence[str],
        handler: BatchHandler,
        *,
        max_batch: int = 500,
        max_wait: float = 0.05,
        weigh: Weigh | None = None,
        prefetch: int | None = None,
        single_active_consumer: bool = False,
    ) -> None:
        self._batch_subscriptions.append(
            BatchSubscription(
                queue,
                tuple(bindings),
                handler,
                max_batch,
                max_wait,
                weigh,
                prefetch,
                single_active_consumer,
            )
        )

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
        self._consumers.append(asyncio.create_task(self._watch_dead_letters()))
        for subscription in self._subscriptions:
            queue = await self._declare_queue(
                subscription.queue, subscription.bindings, self._prefetch
            )
            self._consumers.append(asyncio.create_task(self._consume(queue, subscription)))
        for batched in self._batch_subscriptions:
            # Three batches: one committing, one being worked, the next one arriving; or
            # what a weighed subscription says (its messages may carry many items each).
            prefetch = batched.prefetch or max(self._prefetch, 3 * batched.max_batch)
            queue = await self._declare_queue(
                batched.queue,
                batched.bindings,
                prefetch,
                single_active_consumer=batched.single_active_consumer,
            )
            self._consumers.append(
                asyncio.create_task(self._consume_batches(queue.name, prefetch, batched))
            )

    async def _watch_dead_letters(self) -> None:
        """Keep the dead-letter queue's size in ``prepaid_dead_letter_queue_messages``."""
        assert self._connection is not None
        while True:
            try:
                channel = await self._connection.channel()
                try:
                    # The raw channel: a robust one answers a passive declare from its cache.
                    underlay = await channel.get_underlay_channel()
                    declared = await underlay.queue_declare(self.dead_letter_queue, passive=True)
                finally:
                    await channel.close()
                DEAD_LETTER_QUEUE.labels(self.dead_letter_queue).set(declared.message_count or 0)
            except Exception as error:
                if not is_infrastructure_failure(error):
                    log.exception("cannot count the dead-letter queue")
            await asyncio.sleep(DEAD_LETTER_WATCH_SECONDS)

    async def _declare_queue(
        self,
        name: str,
        bindings: Sequence[str],
        prefetch: int,
        *,
        single_active_consumer: bool = False,
    ) -> AbstractQueue:
        assert self._connection is not None
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        arguments: dict[str, object] = {
            "x-queue-type": "quorum",
            "x-dead-letter-exchange": f"{self._prefix}.dead",
            "x-delivery-limit": MAX_DELIVERIES,
        }
        if single_active_consumer:
            # Added only where asked: a queue's arguments cannot change once declared.
            arguments["x-single-active-consumer"] = True
        queue = await channel.declare_queue(
            self.queue_name(name), durable=True, arguments=arguments
        )
        for pattern in bindings:
            await queue.bind(self.exchange_name, routing_key=pattern)
        self.declared.append(("queue", queue.name))
        return queue

    async def _consume(self, queue: AbstractQueue, subscription: Subscription) -> None:
        # The iterator hands over one message at a time: per-queue order is kept.
        async with queue.iterator() as messages:
            async for message in messages:
                await self._handle(message, subscription)
                if self._stopping.is_set():
                    return

    @contextlib.contextmanager
    def _holding(self) -> Iterator[None]:
        """Count a message (or batch) in hand, so that close() lets it finish."""
        self._in_hand += 1
        self._drained.clear()
        try:
            yield
        finally:
            self._in_hand -= 1
            if self._in_hand == 0:
                self._drained.set()

    async def _handle(self, message: AbstractIncomingMessage, subscription: Subscription) -> None:
        with self._holding():
            await self._handle_held(message, subscription)

    async def _handle_held(
        self, message: AbstractIncomingMessage, subscription: Subscription
    ) -> None:
        try:
            envelope = Envelope.from_bytes(message.body)
        except ValueError:
            log.error("unparseable message dead-lettered", extra={"queue": subscription.queue})
            await self._dead_letter(message, subscription.queue, reason="unparseable")
            return
        try:
            await subscription.handler(envelope)
        except Exception as error:
            # Held, not requeued: a requeue would spend the queue's delivery limit.
            outcome = await handle_with_retries(
                partial(subscription.handler, envelope),
                outage=self._outage(subscription.queue),
                policy=self._retry,
                describe=envelope.message_id,
                first_error=error,
                still_held=lambda: not message.channel.is_closed,
            )
            if outcome is Outcome.RELEASED:
                return  # the broker already put it back
            if outcome is Outcome.POISON:
                await self._dead_letter(message, subscription.queue, reason="failed")
                return
        await _settle_message(message)

    async def _dead_letter(
        self, message: AbstractIncomingMessage, queue: str, *, reason: str
    ) -> None:
        """Reject without requeue: the quorum queue moves it to the dead-letter exchange."""
        DEAD_LETTERED.labels(queue, reason).inc()
        await _settle_message(message, reject=True)

    def _outage(self, queue: str) -> Outage:
        outage = self._outages.get(queue)
        if outage is None:
            outage = self._outages[queue] = Outage(queue)
        return outage

    async def _keep_consumer_link(
        self, queue: str, prefetch: int, arrived: asyncio.Queue[Delivery]
    ) -> None:
        """Consume ``queue`` on a lean connection of its own; connect again when it ends."""
        delay = 0.5
        while not self._stopping.is_set():
            link = ConsumerLink(self._url, queue, prefetch, arrived.put_nowait)
            try:
                await link.open()
                delay = 0.5
                await asyncio.shield(link.closed)
                error: BaseException | None = None
            except (OSError, TimeoutError, AmqpLinkClosed) as lost:
                error = lost
            except asyncio.CancelledError:
                await link.close()
                raise
            if self._stopping.is_set():
                return
            log.warning(
                "batch consumer connection lost; connecting again",
                extra={"queue": queue, "error": repr(error)},
            )
            await asyncio.sleep(delay)
            delay = min(2 * delay, 5.0)

    async def _consume_batches(
        self, queue: str, prefetch: int, subscription: BatchSubscription
    ) -> None:
        # Deliveries arrive in queue order and are batched in that order.
        arrived: asyncio.Queue[Delivery] = asyncio.Queue()
        keeper = asyncio.create_task(self._keep_consumer_link(queue, prefetch, arrived))
        loop = asyncio.get_running_loop()
        in_flight: list[asyncio.Task[None]] = []
        outage = self._outage(subscription.queue)
        batch: list[Delivery] = []
        size = 0

        def take(delivery: Delivery) -> None:
            nonlocal size
            batch.append(delivery)
            size += _weight(delivery, subscription)

        try:
            while not self._stopping.is_set():
                batch, size = [], 0
                take(await arrived.get())
                deadline = loop.time() + subscription.max_wait
                while size < subscription.max_batch:
                    if not arrived.empty():
                        take(arrived.get_nowait())
                        continue
                    in_flight = [task for task in in_flight if not task.done()]
                    remaining = deadline - loop.time()
                    if remaining > 0:
                        with contextlib.suppress(TimeoutError):
                            take(await asyncio.wait_for(arrived.get(), remaining))
                        continue
                    if not in_flight:
                        break
                    # Past the wait, but the batch before is still working: starting a
                    # small batch now would only compete with it for the CPU, so keep
                    # filling this one until that batch ends.
                    getter = asyncio.create_task(arrived.get())
                    await asyncio.wait({getter, *in_flight}, return_when=asyncio.FIRST_COMPLETED)
                    if getter.done():
                        take(getter.result())
                    else:
                        getter.cancel()  # a cancelled get leaves its message queued
                in_flight = [task for task in in_flight if not task.done()]
                # At most two batches at once: one committing, the next being worked; and
                # while a dependency is down, only the batch waiting for it.
                while len(in_flight) >= 2 or (in_flight and outage.ongoing):
                    await asyncio.wait({in_flight.pop(0)})
                released = asyncio.Event()
                task = asyncio.create_task(
                    self._handle_batch(
                        batch, subscription, in_flight[-1] if in_flight else None, released
                    )
                )
                in_flight.append(task)
                # The next batch starts when this one's handler releases it, or ends.
                release = asyncio.create_task(released.wait())
                await asyncio.wait({task, release}, return_when=asyncio.FIRST_COMPLETED)
                release.cancel()
        finally:
            for task in in_flight:
                task.cancel()
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper

    async def _handle_batch(
        self,
        messages: list[Delivery],
        subscription: BatchSubscription,
        previous: asyncio.Task[None] | None,
        released: asyncio.Event,
    ) -> None:
        with self._holding():
            await self._handle_batch_held(messages, subscription, previous, released)

    async def _handle_batch_held(
        self,
        messages: list[Delivery],
        subscription: BatchSubscription,
        previous: asyncio.Task[None] | None,
        released: asyncio.Event,
    ) -> None:
        parsed: list[tuple[Delivery, Envelope]] = []
        for message in messages:
            try:
                parsed.append((message, message.envelope or Envelope.from_bytes(message.body)))
            except ValueError:
                log.error("unparseable message dead-lettered", extra={"queue": subscription.queue})
                DEAD_LETTERED.labels(subscription.queue, "unparseable").inc()
                await _settle(message, ack=False, requeue=False)
        error: Exception | None = None
        if parsed:
            RELEASE_NEXT_BATCH.set(released.set)  # this task's own context
            try:
                await subscription.handler([envelope for _, envelope in parsed])
            except Exception as failed:
                error = failed
            finally:
                RELEASE_NEXT_BATCH.set(None)
        if previous is not None:
            # Acks (and retries) go in delivery order: the earlier batch settles first.
            await asyncio.wait({previous})
        if not parsed:
            return
        if error is None:
            # One ack for the whole batch: every earlier delivery on this channel is settled.
            await _settle(parsed[-1][0], ack=True, multiple=True)
            return
        await self._retry_batch(parsed, subscription, error)

    async def _retry_batch(
        self,
        parsed: list[tuple[Delivery, Envelope]],
        subscription: BatchSubscription,
        error: Exception,
    ) -> None:
        """Wait out an outage with the batch whole, or isolate the poison message in it."""
        outage = self._outage(subscription.queue)
        if is_infrastructure_failure(error):
            # The batch goes again as one (its order and single commit kept) once the
            # dependency is back; the consumer starts no other batch meanwhile.
            outcome = await handle_with_retries(
                partial(subscription.handler, [envelope for _, envelope in parsed]),
                outage=outage,
                policy=replace(self._retry, poison_delays=()),
                describe=f"batch of {len(parsed)}",
                first_error=error,
                still_held=lambda: all(delivery.link.is_open for delivery, _ in parsed),
            )
            if outcome is Outcome.HANDLED:
                await _settle(parsed[-1][0], ack=True, multiple=True)
                return
            # Failing on content now, or some of it redelivered: one at a time, below.
            parsed = [
                (delivery, envelope) for delivery, envelope in parsed if delivery.link.is_open
            ]
        else:
            log.warning(
                "batch failed; retrying its messages one at a time",
                extra={"queue": subscription.queue, "size": len(parsed), "error": repr(error)},
            )
        # One at a time, so that only a poison message is dead-lettered while the good ones
        # of its batch are committed and acked.
        for delivery, envelope in parsed:
            outcome = await handle_with_retries(
                partial(subscription.handler, [envelope]),
                outage=outage,
                policy=self._retry,
                describe=envelope.message_id,
                still_held=_is_open(delivery.link),
            )
            if outcome is Outcome.HANDLED:
                await _settle(delivery, ack=True)
            elif outcome is Outcome.POISON:
                DEAD_LETTERED.labels(subscription.queue, "failed").inc()
                await _settle(delivery, ack=False, requeue=False)

    async def publish(self, envelope: Envelope) -> None:
        await self._queue_publish(await self._underlay_publish_channel(), envelope)

    async def publish_many(self, envelopes: Sequence[Envelope]) -> None:
        """Publish with the confirms in flight together: one round trip, not one each.

        Order holds: each publish runs up to the channel's lock without suspending, the
        lock admits waiters first come first served, and the frames are written under it,
        so the broker receives the messages in the order given.

        Why not ``exchange.publish``: it holds the channel's lock until its frame is on the
        socket, so a batch went out one message per turn of the event loop, each behind a
        writer task and a lock handoff. In a service whose loop is busy (billing under a
        burst of refunds: turns of tens of ms) 500 relay requests took seconds. Here each
        publish only queues its frame, a slice of the batch at a time: no more than the
        connection's write queue holds, so a publish waits inside the lock only when other
        frames (a consumer's acks) share the queue. Each message still counts as safe only
        once the broker confirms it.
        """
        if not envelopes:
            return
        channel = await self._underlay_publish_channel()
        room = max(1, channel.connection.write_queue.maxsize or len(envelopes))
        pending: list[asyncio.Future[None]] = []
        try:
            for start in range(0, len(envelopes), room):
                pending += [
                    asyncio.ensure_future(self._queue_publish(channel, envelope))
                    for envelope in envelopes[start : start + room]
                ]
                # One turn: the slice's publishes queue their frames, the writer sends them.
                await asyncio.sleep(0)
            outcomes = await asyncio.gather(*pending, return_exceptions=True)
        except asyncio.CancelledError:
            # Stopped mid-batch (the relay's stop): nothing is counted as safe, the rows
            # stay in the outbox, and the publishes in flight end with us.
            for publishing in pending:
                publishing.cancel()
            raise
        for index, outcome in enumerate(outcomes):
            if isinstance(outcome, BaseException):
                raise PublishFailed(index, outcome) from outcome

    async def _underlay_publish_channel(self) -> aiormq.Channel:
        if self._publish_channel is None:
            raise RuntimeError("bus not started")
        # The concrete channel: its basic_publish takes ``wait`` (the abstract one omits it).
        return cast(aiormq.Channel, await self._publish_channel.get_underlay_channel())

    async def _queue_publish(self, channel: aiormq.Channel, envelope: Envelope) -> None:
        """Queue one persistent message (mandatory, as aio-pika publishes) and wait for
        the broker's confirm; a nack raises DeliveryError."""
        message = aio_pika.Message(
            envelope.to_bytes(),
            message_id=envelope.message_id,
            type=envelope.type,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        await channel.basic_publish(
            message.body,
            exchange=self.exchange_name,
            routing_key=envelope.routing_key,
            properties=message.properties,
            mandatory=True,
            wait=False,
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

    async def check(self) -> None:
        """Raise ConnectionError unless the broker answers (or this bus's link to it is up)."""
        if self._connection is not None:
            if self._connection.is_closed or self._connection.transport is None:
                raise ConnectionError("the connection to the broker is down")
            return
        connection = await aio_pika.connect(self._url, timeout=5)
        await connection.close()

    async def close(self) -> None:
        self._stopping.set()
        # Graceful: the messages in hand finish their unit of work (commit, then ack) before
        # the consumers stop; one still held after the drain time (waiting out an outage) is
        # cancelled, rolled back and delivered again after the restart.
        if self._in_hand:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._drain_seconds):
                    await self._drained.wait()
        for task in self._consumers:
            task.cancel()
        for task in self._consumers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._consumers.clear()
        if self._connection is not None:
            await self._connection.close()
            self._connection = None
