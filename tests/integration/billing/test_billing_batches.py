"""Readings handled in batches: the same money, positions and roll-ups as one at a time,
a trip never missed, nothing left behind by a failed commit, a projection that matches
the ledger. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from billing.handlers import readings_carried
from billing.service import BillingService
from billing.tables import balances, readings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prepaid_common.bus import InProcessBus
from prepaid_common.contracts import (
    Envelope,
    PaymentSucceededV1,
    ReadingBatchV1,
    ReadingV1,
    utcnow,
)
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from testkit import wait_until
from testkit.billing import (
    balance,
    billing_on,
    define_tariff,
    meter_state,
    open_with_meters,
    reading,
)

NOW = utcnow().replace(microsecond=0)


@pytest.fixture
async def service(backend: tuple[str, str]) -> AsyncIterator[BillingService]:
    database_url, _ = backend
    billing = await billing_on(database_url)
    await define_tariff(billing, "tiered")
    yield billing
    check = await ledger_check(billing)
    assert Decimal(check["sum"]) == 0
    assert check["unbalanced"] == []
    assert check["projection_mismatches"] == []
    await billing.engine.dispose()


async def ledger_check(billing: BillingService) -> dict[str, Any]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=billing.internal_app()), base_url="http://billing"
    ) as api:
        check: dict[str, Any] = (await api.get("/internal/ledger/check")).json()
        return check


async def relay_requests(billing: BillingService) -> list[tuple[str, str]]:
    """(meter, action) of every relay request billing has emitted, oldest first."""
    outbox = billing.store.outbox
    async with billing.store.sessionmaker() as session:
        rows = (await session.scalars(select(outbox.c.envelope).order_by(outbox.c.id))).all()
    return [
        (row["payload"]["meter_id"], row["payload"]["action"])
        for row in rows
        if row["type"] == "relay.requested.v1"
    ]


async def test_a_batch_charges_what_single_readings_charge(service: BillingService) -> None:
    await open_with_meters(service, "S", ["S1"], tariff_id="tiered")
    await open_with_meters(service, "B", ["B1"], tariff_id="tiered")
    # In order, out of order, a duplicate message, the same reading under a new id, and
    # enough energy to cross the tier boundary in the middle of a batch.
    script = [(0, "100"), (10, "101.5"), (5, "100.7"), (20, "104.9"), (10, "101.5")]
    script += [(30, "106.25"), (25, "105"), (40, "109.999"), (30, "106.25")]
    single = service.store.idempotent(service.handlers.handle_reading)
    for minutes, kwh in script:
        envelope = reading("S1", NOW + timedelta(minutes=minutes), kwh)
        await single(envelope)
        await single(envelope)  # redelivered
    batch = service.store.idempotent_batch(service.handlers.handle_readings)
    envelopes = [reading("B1", NOW + timedelta(minutes=m), kwh) for m, kwh in script]
    await batch(envelopes[:3] + envelopes[:1])  # a duplicate id inside one batch
    await batch(envelopes[3:])
    await batch(envelopes[3:])  # the whole batch redelivered
    assert await balance(service, "S") == await balance(service, "B")
    # 9.999 kWh: 5 at 1.00 and 4.999 at 1.50, rounded once.
    assert await balance(service, "B") == Decimal("100.00") - Decimal("12.50")
    assert await meter_state(service, "S1") == await meter_state(service, "B1")


async def test_a_collectors_reading_batch_charges_what_single_readings_charge(
    service: BillingService,
) -> None:
    """reading.batch.v1 (many meters in one message) rates exactly as reading.v1 does; a
    batch message delivered again changes nothing."""
    await open_with_meters(service, "S", ["S1", "S2"], tariff_id="tiered")
    await open_with_meters(service, "B", ["B1", "B2"], tariff_id="tiered")
    script = [(0, "100"), (10, "101.5"), (5, "100.7"), (20, "104.9"), (30, "106.25")]
    single = service.store.idempotent(service.handlers.handle_reading)
    for minutes, kwh in script:
        for meter in ("S1", "S2"):
            await single(reading(meter, NOW + timedelta(minutes=minutes), kwh))

    def batch_of(minutes_kwh: list[tuple[int, str]]) -> Envelope:
        return Envelope.wrap(
            ReadingBatchV1(
                source="collector-a",
                readings=[
                    ReadingV1(
                        meter_id=meter,
                        dtu_id="D1",
                        read_at=NOW + timedelta(minutes=minutes),
                        energy_kwh=Decimal(kwh),
                    )
                    for minutes, kwh in minutes_kwh
                    for meter in ("B1", "B2")
                ],
            ),
            producer="collector",
        )

    first, second = batch_of(script[:2]), batch_of(script[2:])
    handled = service.store.idempotent_batch(service.handlers.handle_readings)
    sizes: list[int] = []

    async def handler(batch: list[Envelope]) -> None:
        sizes.append(sum(map(readings_carried, batch)))
        await handled(batch)

    bus = InProcessBus()
    bus.subscribe_batch(
        "billing.readings",
        ["reading.v1.#", "reading.batch.v1.#"],
        handler,
        max_batch=4,
        weigh=readings_carried,
    )
    # A single reading between two of the batch's own: the position telescopes.
    await bus.publish_many([first, reading("B1", NOW + timedelta(minutes=1), "100.1")])
    await bus.publish_many([second, second])  # the second delivered twice
    assert sizes == [4, 1, 6, 6]  # a batch closes once it holds max_batch readings
    for batched, alone in (("B1", "S1"), ("B2", "S2")):
        assert await meter_state(service, batched) == await meter_state(service, alone)
    assert await balance(service, "B") == await balance(service, "S")
    assert await balance(service, "B") == Decimal("100.00") - 2 * Decimal("6.88")


async def test_a_trip_is_never_missed_when_a_batch_crosses_the_cut_line(
    service: BillingService,
) -> None:
    await open_with_meters(service, "A", ["M1", "M2"], tariff_id="tiered", credit="3.00")
    batch = service.store.idempotent_batch(service.handlers.handle_readings)
    await batch([reading("M1", NOW, "0"), reading("M2", NOW, "0")])
    assert await relay_requests(service) == []
    # Only M1 reads, and the account crosses the cut line in the middle of the batch:
    # every meter of the account is cut.
    await batch([reading("M1", NOW + timedelta(minutes=m), str(m)) for m in range(1, 5)])
    assert sorted(await relay_requests(service)) == [("M1", "trip"), ("M2", "trip")]
    await batch([reading("M1", NOW + timedelta(minutes=9), "9")])
    assert len(await relay_requests(service)) == 2  # already off: nothing new
    await service.store.idempotent(service.handlers.handle_payment)(
        Envelope.wrap(
            PaymentSucceededV1(
                payment_id="p-A",
                account_id="A",
                amount=Decimal("50.00"),
                method="cash",
                reference="R",
                at=utcnow(),
            ),
            producer="test",
        )
    )
    assert sorted((await relay_requests(service))[2:]) == [("M1", "close"), ("M2", "close")]


async def test_a_failed_commit_leaves_nothing_and_the_redelivery_counts_once(
    service: BillingService, monkeypatch: pytest.MonkeyPatch
) -> None:
    await open_with_meters(service, "A", ["M1"], tariff_id="tiered")
    batch = service.store.idempotent_batch(service.handlers.handle_readings)
    await batch([reading("M1", NOW, "10")])
    envelopes = [reading("M1", NOW + timedelta(minutes=m), str(10 + m)) for m in (1, 2, 3)]
    commit = AsyncSession.commit
    failures = iter([True])

    async def failing_commit(session: AsyncSession) -> None:
        if next(failures, False):
            raise ConnectionResetError("database gone at commit")
        await commit(session)

    monkeypatch.setattr(AsyncSession, "commit", failing_commit)
    before = (await balance(service, "A"), await meter_state(service, "M1"))
    with pytest.raises(ConnectionResetError):
        await batch(envelopes)
    assert (await balance(service, "A"), await meter_state(service, "M1")) == before
    async with service.store.sessionmaker() as session:
        inbox = service.store.inbox
        assert await session.scalar(select(func.count()).select_from(inbox)) == 2  # seed + 1
        assert await session.scalar(select(func.count()).select_from(readings)) == 1
    await batch(envelopes)  # redelivered
    await batch(envelopes)  # and once more after it took effect
    assert await balance(service, "A") == Decimal("97.00")


async def test_the_ledger_check_catches_a_projection_that_drifts(service: BillingService) -> None:
    await open_with_meters(service, "A", ["M1"], tariff_id="tiered")
    assert (await ledger_check(service))["projection_mismatches"] == []
    async with service.store.sessionmaker() as session, session.begin():
        await session.execute(
            update(balances)
            .where(balances.c.ledger_account == "tenant:A")
            .values(balance=Decimal("100.01"))
        )
    assert (await ledger_check(service))["projection_mismatches"] == ["tenant:A"]
    async with service.store.sessionmaker() as session, session.begin():
        await session.execute(
            update(balances)
            .where(balances.c.ledger_account == "tenant:A")
            .values(balance=Decimal("100.00"))
        )


# --- property: any split of any arrival order into batches -------------------------------
arrivals = st.lists(
    st.tuples(
        st.integers(min_value=1, max_value=90),  # minutes after the previous reading
        st.decimals(min_value=0, max_value=4, places=3),  # kWh since the previous reading
    ),
    min_size=1,
    max_size=8,
).flatmap(
    lambda steps: st.tuples(
        st.just(steps),
        # The order messages arrive in, the first reading read included: any permutation,
        # some delivered twice.
        st.permutations(range(len(steps) + 1)).flatmap(
            lambda order: st.lists(st.sampled_from(order), max_size=3).map(
                lambda again: list(order) + again
            )
        ),
        st.lists(st.integers(min_value=1, max_value=12), min_size=1, max_size=4),
    )
)
_examples = itertools.count()


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=arrivals)
def test_any_batching_of_any_arrival_order_charges_what_singles_do(
    tmp_path: Path, case: tuple[list[tuple[int, Decimal]], list[int], list[int]]
) -> None:
    steps, order, cuts = case
    asyncio.run(_singles_versus_batches(tmp_path / "billing.db", steps, order, cuts))


async def _singles_versus_batches(
    path: Path, steps: list[tuple[int, Decimal]], order: list[int], cuts: list[int]
) -> None:
    billing = await billing_on(f"sqlite+aiosqlite:///{path}")
    try:
        n = next(_examples)
        if n == 0:
            await define_tariff(billing, "tiered")
        await open_with_meters(billing, f"S{n}", [f"S{n}"], tariff_id="tiered")
        await open_with_meters(billing, f"B{n}", [f"B{n}"], tariff_id="tiered")
        await open_with_meters(billing, f"O{n}", [f"O{n}"], tariff_id="tiered")
        times, registers = [NOW], [Decimal(50)]
        for minutes, kwh in steps:
            times.append(times[-1] + timedelta(minutes=minutes))
            registers.append(registers[-1] + kwh)
        singles = {i: reading(f"S{n}", times[i], registers[i]) for i in range(len(times))}
        batched = {i: reading(f"B{n}", times[i], registers[i]) for i in range(len(times))}
        arrival = list(order)
        single = billing.store.idempotent(billing.handlers.handle_reading)
        for i in range(len(times)):  # the reference: every reading in the order read
            await single(reading(f"O{n}", times[i], registers[i]))
        for i in arrival:
            await single(singles[i])
        consume = billing.store.idempotent_batch(billing.handlers.handle_readings)
        queue = [batched[i] for i in arrival]
        for size in itertools.cycle(cuts):
            if not queue:
                break
            await consume(queue[:size])
            queue = queue[size:]
        expected = await balance(billing, f"O{n}")
        assert await balance(billing, f"S{n}") == expected
        assert await balance(billing, f"B{n}") == expected
        assert await meter_state(billing, f"S{n}") == await meter_state(billing, f"B{n}")
        check = await ledger_check(billing)
        assert check["projection_mismatches"] == []
    finally:
        await billing.engine.dispose()


async def test_billing_on_rabbitmq_rates_batches_and_dead_letters_a_poison_reading(
    postgres_url: str, amqp_url: str, bus_prefix: str
) -> None:
    from prepaid_common.bus.rabbit import RabbitBus

    bus = RabbitBus(amqp_url, prefix=bus_prefix)
    billing = await billing_on(postgres_url, bus)
    try:
        await define_tariff(billing, "tiered")
        meters = [f"M{i}" for i in range(12)]
        for meter in meters:
            await open_with_meters(billing, f"A-{meter}", [meter], tariff_id="tiered")
        billing.register()
        await bus.start()
        for minutes in range(5):
            for meter in meters:
                await bus.publish(reading(meter, NOW + timedelta(minutes=minutes), str(minutes)))
            if minutes == 2:
                # Valid on the wire, refused by billing (a negative register).
                poison = reading("M0", NOW + timedelta(minutes=2, seconds=30), "2")
                poison.payload["energy_kwh"] = "-1"
                await bus.publish(poison)

        async def all_charged() -> bool:
            charged = [await balance(billing, f"A-{m}") for m in meters]
            return all(b == Decimal("96.00") for b in charged)

        await wait_until(all_charged, timeout=60)
        import aio_pika

        connection = await aio_pika.connect(amqp_url)
        async with connection:
            channel = await connection.channel()
            dead = await channel.declare_queue(
                bus.dead_letter_queue, durable=True, arguments={"x-queue-type": "quorum"}
            )

            async def dead_lettered() -> Envelope | None:
                message = await dead.get(fail=False)
                if message is None:
                    return None
                await message.ack()
                return Envelope.from_bytes(message.body)

            landed = await wait_until(dead_lettered, timeout=60)
        assert landed.message_id == poison.message_id
        check = await ledger_check(billing)
        assert check["projection_mismatches"] == []
        assert check["unbalanced"] == []
    finally:
        await bus.close()
        await bus.delete_topology()
        await billing.engine.dispose()
