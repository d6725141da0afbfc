"""The bus adapters and the outbox keep their promises against real servers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest
from payments.service import PaymentsService
from prepaid_common.bus import InProcessBus, MessageBus, PublishFailed, make_bus
from prepaid_common.bus.rabbit import RabbitBus
from prepaid_common.contracts import Envelope
from prepaid_common.db import create_engine
from prepaid_common.outbox import UnitOfWork
from sqlalchemy import func, select
from testkit import wait_until
from testkit.bus import dead_letters, payment


@pytest.fixture
async def rabbit(amqp_url: str, bus_prefix: str) -> AsyncIterator[RabbitBus]:
    bus = RabbitBus(amqp_url, prefix=bus_prefix)
    yield bus
    await bus.close()
    await bus.delete_topology()


async def test_rabbit_delivers_in_order_and_only_acks_after_the_handler(rabbit: RabbitBus) -> None:
    seen: list[str] = []
    failures = {"p2": 1}

    async def handler(envelope: Envelope) -> None:
        reference = envelope.payload["payment_id"]
        if failures.get(reference, 0) > 0:
            failures[reference] -= 1
            raise RuntimeError("database down")
        seen.append(reference)

    rabbit.subscribe("orders", ["payment.succeeded.v1.#"], handler)
    await rabbit.start()
    for n in range(1, 6):
        await rabbit.publish(Envelope.wrap(payment(n), producer="test"))

    async def all_handled() -> list[str] | None:
        return seen if len(set(seen)) == 5 else None

    await wait_until(all_handled)
    # p2 failed once and was redelivered: nothing is lost.
    assert sorted(set(seen)) == ["p1", "p2", "p3", "p4", "p5"]


async def test_rabbit_dead_letters_a_message_that_always_fails(
    rabbit: RabbitBus, amqp_url: str
) -> None:
    attempts: list[str] = []

    async def handler(envelope: Envelope) -> None:
        attempts.append(envelope.message_id)
        raise RuntimeError("poison")

    rabbit.subscribe("poison", ["payment.succeeded.v1.#"], handler)
    await rabbit.start()
    sent = Envelope.wrap(payment(1), producer="test")
    await rabbit.publish(sent)

    (landed,) = await dead_letters(rabbit, amqp_url, timeout=30)
    assert landed.message_id == sent.message_id
    assert len(attempts) >= 2


async def test_outbox_survives_a_bus_outage_and_consumers_apply_once(
    backend: tuple[str, str], bus_prefix: str
) -> None:
    """A message recorded in the outbox is published after the bus comes back, and a
    consumer that sees it twice applies it once."""
    db_url, amqp_url = backend
    bus: MessageBus = make_bus(amqp_url, prefix=bus_prefix)
    engine = create_engine(db_url)
    service = PaymentsService(engine=engine, bus=bus)
    await service.migrate()
    applied: list[str] = []

    async def apply(uow: UnitOfWork, envelope: Envelope) -> None:
        applied.append(envelope.message_id)

    consume = service.store.idempotent(apply)
    bus.subscribe("probe", ["payment.succeeded.v1.#"], consume)
    try:
        async with service.store.unit_of_work() as uow:
            first = await uow.emit(payment(1))
        # Nothing has been relayed yet: the row waits in the outbox.
        async with service.store.sessionmaker() as session:
            waiting = await session.scalar(select(func.count()).select_from(service.tables.outbox))
        assert waiting == 1
        await bus.start()
        assert await service.relay.relay_once() == 1

        async def delivered() -> bool:
            return first.message_id in applied

        await wait_until(delivered)
        await consume(first)  # a redelivery
        await asyncio.sleep(0)
        assert applied.count(first.message_id) == 1
        async with service.store.sessionmaker() as session:
            left = await session.scalar(select(func.count()).select_from(service.tables.outbox))
        assert left == 0
    finally:
        await bus.close()
        if isinstance(bus, RabbitBus):
            await bus.delete_topology()
        await engine.dispose()


async def test_in_process_bus_dead_letters_after_bounded_attempts() -> None:
    bus = InProcessBus(retry_delay=0)
    calls: list[int] = []

    async def failing(envelope: Envelope) -> None:
        calls.append(1)
        raise RuntimeError("always")

    bus.subscribe("q", ["#"], failing)
    await bus.publish(Envelope.wrap(payment(1), producer="t"))
    assert len(calls) == 5
    assert len(bus.dead_letters) == 1


class BrokerGoesAway(InProcessBus):
    """The in-process bus, but the broker stops confirming after ``healthy`` messages."""

    def __init__(self, healthy: int) -> None:
        super().__init__()
        self.healthy = healthy

    async def publish(self, envelope: Envelope) -> None:
        if self.healthy == 0:
            raise ConnectionError("broker unreachable")
        self.healthy -= 1
        await super().publish(envelope)

    async def publish_many(self, envelopes: Sequence[Envelope]) -> None:
        for confirmed, envelope in enumerate(envelopes):
            try:
                await self.publish(envelope)
            except ConnectionError as error:
                raise PublishFailed(confirmed, error) from None


async def test_relay_removes_exactly_the_rows_the_bus_confirmed(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    bus = BrokerGoesAway(healthy=2)
    service = PaymentsService(engine=engine, bus=bus)
    await service.migrate()
    try:
        async with service.store.unit_of_work() as uow:
            for n in range(5):
                await uow.emit(payment(n))
        with pytest.raises(ConnectionError):
            await service.relay.relay_once()
        async with service.store.sessionmaker() as session:
            left = (
                await session.scalars(
                    select(service.tables.outbox.c.envelope).order_by(service.tables.outbox.c.id)
                )
            ).all()
        assert [row["payload"]["payment_id"] for row in left] == ["p2", "p3", "p4"]
        bus.healthy = 10
        assert await service.relay.relay_once() == 3
    finally:
        await engine.dispose()
