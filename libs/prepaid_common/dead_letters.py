"""The dead-letter queue, visible and recoverable: list, replay or discard its messages.

A message lands there only when it failed on its own content (an outage is waited out by
the consumer). After the fault is fixed, an operator replays it: it is published again to
the bus's exchange with its original routing key, and every consumer's inbox skips it if it
had in fact been applied. Or the operator discards it. The gateway serves this to admins
(``/api/v1/admin/dead-letters``), each action audited; the command line does the same::

    python -m prepaid_common.dead_letters list [--limit N]
    python -m prepaid_common.dead_letters replay MESSAGE_ID [MESSAGE_ID ...] | --all
    python -m prepaid_common.dead_letters discard MESSAGE_ID [MESSAGE_ID ...]

(``PREPAID_AMQP_URL`` and ``PREPAID_BUS_PREFIX`` say which broker and bus.)
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, Protocol

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

from prepaid_common.bus import InProcessBus, MessageBus
from prepaid_common.bus.metrics import DEAD_LETTER_QUEUE
from prepaid_common.bus.rabbit import RabbitBus
from prepaid_common.contracts import Envelope
from prepaid_common.contracts.api.dead_letters import DeadLetterPage, DeadLetterView
from prepaid_common.errors import NotFound, Unavailable
from prepaid_common.settings import CommonSettings


class DeadLetterQueue(Protocol):
    """What an operator can do with the dead-letter queue."""

    async def page(self, *, limit: int = 100) -> DeadLetterPage:
        """Return the first ``limit`` messages and the queue's size; nothing is taken."""

    async def replay(self, message_id: str) -> DeadLetterView:
        """Publish the message again with its routing key, then remove it (NotFound if absent)."""

    async def discard(self, message_id: str) -> DeadLetterView:
        """Remove the message for good (NotFound if absent)."""


def dead_letters_of(bus: MessageBus) -> DeadLetterQueue:
    """Return the dead-letter queue of ``bus`` (RabbitMQ's queue, or the in-process list)."""
    if isinstance(bus, RabbitBus):
        return RabbitDeadLetters(bus.url, prefix=bus.prefix)
    if isinstance(bus, InProcessBus):
        return InProcessDeadLetters(bus)
    raise TypeError(f"no dead-letter queue for {type(bus).__name__}")


class RabbitDeadLetters:
    """``<prefix>.dead-letters`` on RabbitMQ, read with basic.get and put back unless acted on."""

    def __init__(self, url: str, *, prefix: str) -> None:
        self._url = url
        self.queue = f"{prefix}.dead-letters"
        self.exchange = f"{prefix}.events"

    @asynccontextmanager
    async def _open(self) -> AsyncIterator[tuple[AbstractChannel, AbstractQueue, int]]:
        try:
            connection = await aio_pika.connect(self._url, timeout=10)
        except Exception as error:
            raise Unavailable(f"the broker cannot be reached: {error!r}") from error
        async with connection:
            channel = await connection.channel()  # publisher confirms: a replay is safe
            queue = await channel.declare_queue(self.queue, passive=True)
            total = queue.declaration_result.message_count or 0
            DEAD_LETTER_QUEUE.labels(self.queue).set(total)
            yield channel, queue, total

    async def page(self, *, limit: int = 100) -> DeadLetterPage:
        async with self._open() as (_channel, queue, total):
            held: list[AbstractIncomingMessage] = []
            try:
                # Every message taken stays unacknowledged until the end, so that none is
                # handed over twice; then all go back.
                for _ in range(min(limit, total)):
                    message = await queue.get(fail=False)
                    if message is None:
                        break
                    held.append(message)
                items = [_view(message) for message in held]
            finally:
                for message in held:
                    await message.nack(requeue=True)
        return DeadLetterPage(total=total, items=items)

    async def replay(self, message_id: str) -> DeadLetterView:
        async def publish_again(channel: AbstractChannel, message: AbstractIncomingMessage) -> None:
            exchange = await channel.get_exchange(self.exchange, ensure=False)
            await exchange.publish(
                aio_pika.Message(
                    message.body,
                    message_id=message.message_id,
                    type=message.type,
                    content_type=message.content_type,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                routing_key=_view(message).routing_key,
            )

        return await self._take(message_id, publish_again)

    async def discard(self, message_id: str) -> DeadLetterView:
        async def nothing(_channel: AbstractChannel, _message: AbstractIncomingMessage) -> None:
            return None

        return await self._take(message_id, nothing)

    async def _take(
        self,
        message_id: str,
        act: Callable[[AbstractChannel, AbstractIncomingMessage], Awaitable[None]],
    ) -> DeadLetterView:
        """Find the message, act on it, then ack it (only after the act: a replay is
        confirmed by the broker before the dead letter goes)."""
        async with self._open() as (channel, queue, total):
            held: list[AbstractIncomingMessage] = []
            try:
                for _ in range(total):
                    message = await queue.get(fail=False)
                    if message is None:
                        break
                    if _message_id(message) != message_id:
                        held.append(message)
                        continue
                    view = _view(message)
                    await act(channel, message)
                    await message.ack()
                    DEAD_LETTER_QUEUE.labels(self.queue).set(total - 1)
                    return view
            finally:
                for other in held:
                    await other.nack(requeue=True)
        raise NotFound(f"no dead-lettered message {message_id}")


class InProcessDeadLetters:
    """The in-process bus's dead letters (standalone mode)."""

    def __init__(self, bus: InProcessBus) -> None:
        self._bus = bus

    async def page(self, *, limit: int = 100) -> DeadLetterPage:
        letters = self._bus.dead_letters
        return DeadLetterPage(
            total=len(letters),
            items=[
                _envelope_view(envelope, queue=queue, reason="failed")
                for queue, envelope, _error in letters[:limit]
            ],
        )

    async def replay(self, message_id: str) -> DeadLetterView:
        queue, envelope = self._remove(message_id)
        try:
            await self._bus.publish(envelope)
        except Exception:
            self._bus.dead_letters.append((queue, envelope, "replay failed"))
            raise
        return _envelope_view(envelope, queue=queue, reason="failed")

    async def discard(self, message_id: str) -> DeadLetterView:
        queue, envelope = self._remove(message_id)
        return _envelope_view(envelope, queue=queue, reason="failed")

    def _remove(self, message_id: str) -> tuple[str, Envelope]:
        for index, (queue, envelope, _error) in enumerate(self._bus.dead_letters):
            if envelope.message_id == message_id:
                del self._bus.dead_letters[index]
                return queue, envelope
        raise NotFound(f"no dead-lettered message {message_id}")


def _message_id(message: AbstractIncomingMessage) -> str:
    # Every message the outbox publishes carries its id; a foreign one is named by its body.
    return message.message_id or f"sha256:{hashlib.sha256(message.body).hexdigest()[:32]}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _view(message: AbstractIncomingMessage) -> DeadLetterView:
    """Describe a dead-lettered message from its body and the broker's x-death record."""
    deaths = message.headers.get("x-death")
    latest = deaths[0] if isinstance(deaths, list) and deaths else None
    death: dict[str, Any] = latest if isinstance(latest, dict) else {}
    routing_keys = death.get("routing-keys")
    routing_key = (
        _text(routing_keys[0])
        if isinstance(routing_keys, list) and routing_keys
        else message.routing_key or ""
    )
    died_at = death.get("time")
    try:
        payload: dict[str, Any] = Envelope.from_bytes(message.body).model_dump(mode="json")
    except ValueError:
        payload = {"unparseable": message.body[:200].decode(errors="replace")}
    return DeadLetterView(
        message_id=_message_id(message),
        type=message.type or str(payload.get("type", "unknown")),
        routing_key=routing_key,
        queue=_text(death.get("queue", message.headers.get("x-first-death-queue", ""))),
        reason=_text(death.get("reason", message.headers.get("x-first-death-reason", ""))),
        dead_lettered_at=died_at if isinstance(died_at, datetime) else None,
        payload=payload,
    )


def _envelope_view(envelope: Envelope, *, queue: str, reason: str) -> DeadLetterView:
    return DeadLetterView(
        message_id=envelope.message_id,
        type=envelope.type,
        routing_key=envelope.routing_key,
        queue=queue,
        reason=reason,
        payload=envelope.model_dump(mode="json"),
    )


async def _run(arguments: argparse.Namespace, queue: DeadLetterQueue) -> int:
    if arguments.command == "list":
        page = await queue.page(limit=arguments.limit)
        print(json.dumps({"total": page.total}))
        for item in page.items:
            print(item.model_dump_json())
        return 0
    act = queue.replay if arguments.command == "replay" else queue.discard
    ids: list[str] = list(arguments.message_ids)
    if getattr(arguments, "all", False):
        ids = [item.message_id for item in (await queue.page(limit=arguments.limit)).items]
    failed = 0
    for message_id in ids:
        try:
            view = await act(message_id)
        except NotFound as missing:
            print(json.dumps({"message_id": message_id, "error": missing.detail}))
            failed += 1
            continue
        print(json.dumps({"message_id": view.message_id, arguments.command: "done"}))
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    """List, replay or discard dead-lettered messages (see the module's docstring)."""
    parser = argparse.ArgumentParser(prog="python -m prepaid_common.dead_letters")
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="show the first messages (nothing is taken)")
    listing.add_argument("--limit", type=int, default=100)
    replay = commands.add_parser("replay", help="publish again with the original routing key")
    replay.add_argument("message_ids", nargs="*")
    replay.add_argument("--all", action="store_true", help="replay the first --limit messages")
    replay.add_argument("--limit", type=int, default=1000)
    discard = commands.add_parser("discard", help="remove for good")
    discard.add_argument("message_ids", nargs="+")
    arguments = parser.parse_args(argv)
    if arguments.command == "replay" and not arguments.message_ids and not arguments.all:
        parser.error("replay takes message ids or --all")
    settings = CommonSettings()
    if not settings.amqp_url:
        parser.error("PREPAID_AMQP_URL is not set (the in-process bus keeps none across runs)")
    queue = RabbitDeadLetters(settings.amqp_url, prefix=settings.bus_prefix)
    return asyncio.run(_run(arguments, queue))


if __name__ == "__main__":
    sys.exit(main())
