"""Billing scaled out over RabbitMQ: readings sharded by meter over several replicas.

Each meter's readings are taken by one replica only, in the order they were read, and are
billed to the fen even where one account's meters sit on shards of different replicas; a
replica leaving mid-stream hands its shards (and what it held unacknowledged) to the next
without losing, repeating or reordering a reading; the calendar sweeps on one replica at a
time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import datetime, timedelta
from decimal import Decimal

from billing.handlers import readings_of
from billing.service import BillingService
from billing.settings import BillingSettings
from billing.tables import anomalies
from billing.tables import readings as reading_rows
from prepaid_common.bus.rabbit import RabbitBus
from prepaid_common.contracts import Envelope, ReadingBatchV1, ReadingV1, utcnow
from prepaid_common.contracts.sharding import shard_of, sharded_routing_key
from prepaid_common.outbox import UnitOfWork
from sqlalchemy import func, select
from testkit import wait_until
from testkit.billing import balance, billing_on, define_tariff, open_with_meters

# What each replica's reading handler was given: (replica, meter, register), in the order
# the handlers returned (each shard's batches are handled one after the other).
Log = list[tuple[str, str, Decimal]]


def settings(shards: int, replicas: int, replica: int, **more: object) -> BillingSettings:
    return BillingSettings.model_validate(
        {
            "reading_shards": shards,
            "billing_replicas": replicas,
            "billing_replica": replica,
            **more,
        }
    )


def record(service: BillingService, name: str, log: Log) -> None:
    """Log the readings this replica's handler takes (call before ``register``)."""
    handle = service.handlers.handle_readings

    async def recording(uow: UnitOfWork, batch: list[Envelope]) -> None:
        await handle(uow, batch)
        log.extend((name, r.meter_id, r.energy_kwh) for r in readings_of(batch))

    service.handlers.handle_readings = recording  # type: ignore[method-assign]


def collector_batches(
    meters: list[str], at: datetime, kwh: int, shards: int, source: str = "c1"
) -> list[Envelope]:
    """One round of readings as a collector sends it: one batch per shard, shard-routed."""
    by_shard: dict[int, list[ReadingV1]] = {}
    for meter in meters:
        by_shard.setdefault(shard_of(meter, shards), []).append(
            ReadingV1(meter_id=meter, dtu_id="D1", read_at=at, energy_kwh=Decimal(kwh))
        )
    return [
        Envelope.wrap(
            ReadingBatchV1(source=source, readings=part),
            producer="test",
            routing_key=sharded_routing_key(ReadingBatchV1.TYPE, shard, source),
        )
        for shard, part in sorted(by_shard.items())
    ]


def sequences(log: Log) -> dict[str, list[Decimal]]:
    by_meter: dict[str, list[Decimal]] = {}
    for _, meter, kwh in log:
        by_meter.setdefault(meter, []).append(kwh)
    return by_meter


async def anomaly_kinds(service: BillingService) -> list[str]:
    async with service.store.sessionmaker() as session:
        return list((await session.scalars(select(anomalies.c.kind))).all())


def tiered_cost(kwh: int) -> Decimal:
    """The test tariff's charge for one meter's ``kwh``: 1.00 up to 5 kWh, 1.50 above."""
    return Decimal(min(kwh, 5)) + Decimal("1.5") * max(kwh - 5, 0)


async def test_two_replicas_take_disjoint_shards_and_bill_to_the_fen(
    postgres_url: str, amqp_url: str, bus_prefix: str
) -> None:
    shards, rounds = 4, 10
    buses = [RabbitBus(amqp_url, prefix=bus_prefix) for _ in range(3)]
    first, second, publisher = buses
    replicas = [
        await billing_on(postgres_url, first, settings(shards, 2, 0)),
        await billing_on(postgres_url, second, settings(shards, 2, 1)),
    ]
    log: Log = []
    everything: list[str] = []  # what a consumer of every shard (control) is given

    async def take_all(batch: list[Envelope]) -> None:
        everything.extend(r.meter_id for r in readings_of(batch))

    try:
        await define_tariff(replicas[0], "tiered")
        # Six tenants of two meters each: a tenant's meters may fall on either replica.
        accounts = {f"A{n}": [f"M{n}", f"M{n + 6}"] for n in range(6)}
        meters = [meter for pair in accounts.values() for meter in pair]
        owner = {meter: shard_of(meter, shards) % 2 for meter in meters}
        assert any(owner[a] != owner[b] for a, b in accounts.values())
        for account, pair in accounts.items():
            await open_with_meters(replicas[0], account, pair, tariff_id="tiered")
        for name, replica in zip(("r0", "r1"), replicas, strict=True):
            record(replica, name, log)
            replica.register()
        publisher.subscribe_batch("everything", ["reading.batch.v1.#"], take_all)
        for bus in buses:
            await bus.start()
        start = utcnow()
        for kwh in range(rounds + 1):
            await publisher.publish_many(
                collector_batches(meters, start + timedelta(minutes=kwh), kwh, shards)
            )

        async def all_charged() -> bool:
            want = Decimal(100) - 2 * tiered_cost(rounds)
            return all([await balance(replicas[0], a) == want for a in accounts])

        await wait_until(all_charged, timeout=60)
        await wait_until(lambda: _true(len(everything) == len(meters) * (rounds + 1)))
        # Every meter on exactly one replica, the owner of its shard, in register order.
        for meter in meters:
            takers = {name for name, m, _ in log if m == meter}
            assert takers == {f"r{owner[meter]}"}, meter
        assert sequences(log) == {m: [Decimal(k) for k in range(rounds + 1)] for m in meters}
        assert "register_backwards" not in await anomaly_kinds(replicas[0])
    finally:
        for bus in buses:
            await bus.close()
            await bus.delete_topology()
        for replica in replicas:
            await replica.engine.dispose()


async def test_a_replica_leaving_mid_stream_hands_its_shards_over_in_order(
    postgres_url: str, amqp_url: str, bus_prefix: str
) -> None:
    shards, rounds = 2, 40
    # Small batches and prefetch, so that the leaving replica holds many messages unacked.
    small = {"billing_reading_batch_max": 4, "billing_reading_prefetch": 8}
    leaving_bus = RabbitBus(amqp_url, prefix=bus_prefix, drain_seconds=0.5)
    staying_bus = RabbitBus(amqp_url, prefix=bus_prefix)
    publisher = RabbitBus(amqp_url, prefix=bus_prefix)
    # Both own every shard (a rolling restart: the new pod starts before the old one ends).
    leaving = await billing_on(postgres_url, leaving_bus, settings(shards, 1, 0, **small))
    staying = await billing_on(postgres_url, staying_bus, settings(shards, 1, 0, **small))
    log: Log = []
    gate_closed = asyncio.Event()
    stuck: list[int] = []
    try:
        await define_tariff(leaving, "tiered")
        meters = [f"S{n}" for n in range(6)]
        assert {shard_of(m, shards) for m in meters} == {0, 1}
        for meter in meters:
            await open_with_meters(leaving, f"A-{meter}", [meter], tariff_id="tiered")
        record(leaving, "leaving", log)
        record(staying, "staying", log)
        # Once the leaving replica has billed a third of the stream, its next batches hang
        # before their work: they are cancelled and rolled back when it leaves.
        handle = leaving.handlers.handle_readings

        async def hang_after_a_third(uow: UnitOfWork, batch: list[Envelope]) -> None:
            if len(log) >= len(meters) * (rounds + 1) // 3:
                gate_closed.set()
                stuck.append(len(batch))
                await asyncio.Event().wait()
            await handle(uow, batch)

        leaving.handlers.handle_readings = hang_after_a_third  # type: ignore[method-assign]
        leaving.register()
        await leaving_bus.start()
        await publisher.start()
        start = utcnow()
        for kwh in range(rounds + 1):
            await publisher.publish_many(
                collector_batches(meters, start + timedelta(minutes=kwh), kwh, shards)
            )
        await gate_closed.wait()

        async def committed() -> int:
            async with leaving.store.sessionmaker() as session:
                return int(await session.scalar(select(func.count()).select_from(reading_rows)))

        # What the leaving replica billed is committed (its later batches hang unbilled).
        await wait_until(lambda: _equal(committed(), len(log)))
        taken_before = len(log)
        staying.register()
        await staying_bus.start()  # waits behind the active consumer of each shard
        await leaving_bus.close()
        assert stuck, "the leaving replica held no batch when it left"

        async def all_taken() -> bool:
            return len(log) >= len(meters) * (rounds + 1)

        await wait_until(all_taken, timeout=60)
        assert taken_before < len(log)
        # The replica that stayed took nothing while the other was active, then the rest:
        # every meter's registers exactly once each, in order.
        names = [name for name, _, _ in log]
        assert names == ["leaving"] * names.count("leaving") + ["staying"] * names.count("staying")
        assert sequences(log) == {m: [Decimal(k) for k in range(rounds + 1)] for m in meters}
        want = Decimal(100) - tiered_cost(rounds)
        assert [await balance(staying, f"A-{m}") for m in meters] == [want] * len(meters)
        assert "register_backwards" not in await anomaly_kinds(staying)
    finally:
        for bus in (staying_bus, leaving_bus, publisher):
            await bus.close()
            await bus.delete_topology()
        await leaving.engine.dispose()
        await staying.engine.dispose()


async def test_the_calendar_sweeps_on_one_replica_at_a_time(postgres_url: str) -> None:
    first = await billing_on(postgres_url, settings=settings(1, 2, 0))
    second = await billing_on(postgres_url, settings=settings(1, 2, 1))
    try:
        async with first.calendar.sweep_lock() as held:
            assert held
            assert not await second.calendar.sweep_unless_another_is()
        # Released with the block: the other replica sweeps the next round.
        assert await second.calendar.sweep_unless_another_is()
        assert await first.calendar.sweep_unless_another_is()
    finally:
        await first.engine.dispose()
        await second.engine.dispose()


async def _true(value: bool) -> bool:
    return value


async def _equal(left: Awaitable[int], right: int) -> bool:
    return await left == right
