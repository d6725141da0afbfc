"""A message in hand while the database is down is waited with, not dead-lettered.

The reproduction of issue 10: a consumer holds a top-up when PostgreSQL stops for a few
seconds. Before, the adapter requeued it at once, the quorum queue's delivery limit was
spent within milliseconds and the top-up went to the dead-letter queue for good. Now the
consumer keeps it, retries until the database is back, and applies it once. Both ways of
consuming are covered: a subscription (aio-pika) and a batch subscription (the lean
consumer), the latter with a backlog drained across the blink.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal

import aio_pika
import pytest
from integration.common.test_batch_bus import drop_our_broker_connections
from prepaid_common.bus.rabbit import RabbitBus
from prepaid_common.contracts import Envelope
from prepaid_common.db import Money, create_engine, make_sessionmaker
from prepaid_common.outbox import ServiceStore, UnitOfWork
from prepaid_common.service import service_metadata
from sqlalchemy import Column, String, Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine
from testkit import wait_until
from testkit.bus import payment

from .conftest import PrivatePostgres

metadata, plumbing = service_metadata("resilience")
credits = Table(
    "resilience_credits",
    metadata,
    Column("payment_id", String(64), primary_key=True),
    Column("amount", Money(), nullable=False),
)


@pytest.fixture
async def engine(private_database: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(private_database)
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    yield engine
    await engine.dispose()


@pytest.fixture
async def rabbit(amqp_url: str, bus_prefix: str) -> AsyncIterator[RabbitBus]:
    bus = RabbitBus(amqp_url, prefix=bus_prefix)
    yield bus
    await bus.close()
    await bus.delete_topology()


def store_of(engine: AsyncEngine) -> ServiceStore:
    return ServiceStore("resilience", make_sessionmaker(engine), plumbing.outbox, plumbing.inbox)


async def credit(uow: UnitOfWork, envelope: Envelope) -> None:
    await uow.session.execute(
        insert(credits).values(
            payment_id=envelope.payload["payment_id"], amount=Decimal(envelope.payload["amount"])
        )
    )


async def credited(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        count = await connection.scalar(select(func.count()).select_from(credits))
    return int(count or 0)


async def dead_lettered(bus: RabbitBus, amqp_url: str) -> int:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(bus.dead_letter_queue, passive=True)
        return queue.declaration_result.message_count or 0


def gated(
    handler: Callable[[Envelope], Awaitable[None]], gate: asyncio.Event, held: asyncio.Event
) -> Callable[[Envelope], Awaitable[None]]:
    """A handler that, like a frozen billing, holds its first message until ``gate`` opens."""

    async def handle(envelope: Envelope) -> None:
        held.set()
        await gate.wait()
        await handler(envelope)

    return handle


async def test_a_top_up_held_while_the_database_is_down_is_credited_once_it_is_back(
    rabbit: RabbitBus, engine: AsyncEngine, private_postgres: PrivatePostgres, amqp_url: str
) -> None:
    gate, held = asyncio.Event(), asyncio.Event()
    rabbit.subscribe(
        "credits",
        ["payment.succeeded.v1.#"],
        gated(store_of(engine).idempotent(credit), gate, held),
    )
    await rabbit.start()
    await rabbit.publish(Envelope.wrap(payment(1), producer="payments"))
    await asyncio.wait_for(held.wait(), 10)

    private_postgres.stop()
    gate.set()  # the consumer now works on the message with the database gone
    await asyncio.sleep(3)  # the old adapter dead-lettered it within about 25 ms
    assert await dead_lettered(rabbit, amqp_url) == 0

    private_postgres.start()

    async def applied() -> bool:
        return await credited(engine) == 1

    await wait_until(applied, timeout=20)
    assert await dead_lettered(rabbit, amqp_url) == 0


async def test_a_backlog_drained_across_a_database_blink_loses_no_batch(
    rabbit: RabbitBus, engine: AsyncEngine, private_postgres: PrivatePostgres, amqp_url: str
) -> None:
    store = store_of(engine)
    consume = store.idempotent_batch(_credit_all)
    gate, held = asyncio.Event(), asyncio.Event()

    async def handle(batch: list[Envelope]) -> None:
        held.set()
        await gate.wait()
        await consume(batch)

    rabbit.subscribe_batch(
        "credits", ["payment.succeeded.v1.#"], handle, max_batch=10, max_wait=0.05
    )
    sent = [Envelope.wrap(payment(n), producer="payments") for n in range(60)]
    await rabbit.start()
    await rabbit.publish_many(sent)  # a backlog: six batches and more
    await asyncio.wait_for(held.wait(), 10)

    private_postgres.stop()
    gate.set()
    await asyncio.sleep(3)
    assert await dead_lettered(rabbit, amqp_url) == 0

    private_postgres.start()

    async def all_applied() -> bool:
        return await credited(engine) == len(sent)

    await wait_until(all_applied, timeout=25)
    assert await dead_lettered(rabbit, amqp_url) == 0


async def _credit_all(uow: UnitOfWork, batch: list[Envelope]) -> None:
    for envelope in batch:
        await credit(uow, envelope)


# aiormq reports the forced close from its background tasks; that is the point here.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_messages_held_through_an_outage_survive_the_broker_dropping_the_consumer(
    rabbit: RabbitBus, engine: AsyncEngine, private_postgres: PrivatePostgres, amqp_url: str
) -> None:
    consume = store_of(engine).idempotent_batch(_credit_all)
    gate, held = asyncio.Event(), asyncio.Event()

    async def handle(batch: list[Envelope]) -> None:
        held.set()
        await gate.wait()
        await consume(batch)

    rabbit.subscribe_batch("credits", ["payment.succeeded.v1.#"], handle, max_batch=10)
    sent = [Envelope.wrap(payment(n), producer="payments") for n in range(30)]
    await rabbit.start()
    await rabbit.publish_many(sent)
    await asyncio.wait_for(held.wait(), 10)

    private_postgres.stop()
    gate.set()
    await asyncio.sleep(1)  # the consumer is waiting for the database, messages in hand
    if not drop_our_broker_connections():
        pytest.skip("rabbitmqctl cannot close this process's connections here")
    await asyncio.sleep(2)  # the broker took them back; the consumer connected again
    private_postgres.start()

    async def all_applied() -> bool:
        return await credited(engine) == len(sent)

    await wait_until(all_applied, timeout=25)
    assert await dead_lettered(rabbit, amqp_url) == 0
