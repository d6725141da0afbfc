"""Batched poll outcomes: one meter's outcomes in one batch land in order, with the status
changes each would have said alone; the batch is one transaction."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal

import pytest
from collector import records
from collector.domain import DecodedReading
from collector.reading_sink import PollOutcome, ReadingSink, write_outcomes
from collector.service import CollectorService
from collector.tables import meters
from prepaid_common.bus import InProcessBus
from prepaid_common.contracts import utcnow
from prepaid_common.contracts.api.collector import DtuRegistration
from prepaid_common.db import create_engine
from prepaid_common.outbox import ServiceStore
from sqlalchemy import select, update


@pytest.fixture
async def store(backend: tuple[str, str]) -> AsyncIterator[ServiceStore]:
    database_url, _ = backend
    engine = create_engine(database_url)
    service = CollectorService(engine=engine, bus=InProcessBus())
    await service.migrate()
    body = DtuRegistration.model_validate(
        {
            "id": "B1",
            "name": "batch",
            "host": "127.0.0.1",
            "port": 1502,
            "meters": [
                {"id": f"B1-0{u}", "unit_id": u, "profile": "reference-prepaid"} for u in (1, 2)
            ],
        }
    )
    await records.register_dtu(service.store, body, service.profiles)
    yield service.store
    await engine.dispose()


async def said(store: ServiceStore) -> list[tuple[str, str, object]]:
    """What the outbox holds, in order: status changes, and each batch's readings."""
    async with store.sessionmaker() as session:
        rows = await session.execute(select(store.outbox.c.envelope).order_by(store.outbox.c.id))
        out: list[tuple[str, str, object]] = []
        for (e,) in rows:
            if e["type"] == "reading.batch.v1":
                assert e["routing_key"] == f"reading.batch.v1.{e['payload']['source']}"
                out += [
                    ("reading", r["meter_id"], r["energy_kwh"]) for r in e["payload"]["readings"]
                ]
            else:
                out.append((e["type"], e["payload"]["meter_id"], e["payload"]["online"]))
        return out


def reading(kwh: str) -> DecodedReading:
    return DecodedReading(energy_kwh=Decimal(kwh), relay="closed")


async def test_outcomes_of_one_meter_keep_their_order(store: ServiceStore) -> None:
    at = utcnow()
    outcomes = [
        PollOutcome("B1", "B1-01", at, reading("1.000")),
        *(
            PollOutcome("B1", "B1-01", at + timedelta(seconds=n), None, "no reply")
            for n in (1, 2, 3)
        ),
        PollOutcome("B1", "B1-02", at, None, "no reply"),
        PollOutcome("B1", "B1-01", at + timedelta(seconds=4), reading("1.500")),
        PollOutcome("B1", "GONE", at, reading("9.000")),
    ]
    links = await write_outcomes(store, outcomes)
    assert [None if link is None else link.consecutive_failures for link in links] == [
        0,
        1,
        2,
        3,
        1,
        0,
        None,
    ]
    # Status changes as each outcome would have said them alone, then one batch holding
    # the readings in the order they were taken.
    assert await said(store) == [
        ("meter.status.v1", "B1-01", True),
        ("meter.status.v1", "B1-01", False),
        ("meter.status.v1", "B1-01", True),
        ("reading", "B1-01", "1.000"),
        ("reading", "B1-01", "1.500"),
    ]
    first = await records.get_meter(store, "B1-01")
    assert (first.online, first.last_reading and first.last_reading.energy_kwh) == (
        True,
        Decimal("1.500"),
    )
    second = await records.get_meter(store, "B1-02")
    assert (second.online, second.last_reading) == (False, None)
    (dtu,) = await records.list_dtus(store, "B1")
    assert dtu.online


async def test_the_sink_gathers_and_settles(store: ServiceStore) -> None:
    import asyncio

    sink = ReadingSink(store, source="c-7", max_wait=0.01)
    writer = asyncio.create_task(sink.run())
    try:
        tickets = [
            await sink.reading(
                dtu_id="B1", meter_id="B1-01", reading=reading(f"{n}.000"), at=utcnow()
            )
            for n in range(1, 6)
        ]
        await sink.settled(tickets[-1])
        meter = await records.get_meter(store, "B1-01")
        assert meter.last_reading is not None
        assert meter.last_reading.energy_kwh == Decimal("5.000")
        async with store.sessionmaker() as session:
            batches = [
                e
                for (e,) in await session.execute(select(store.outbox.c.envelope))
                if e["type"] == "reading.batch.v1"
            ]
        assert {e["routing_key"] for e in batches} == {"reading.batch.v1.c-7"}
        assert [r["energy_kwh"] for e in batches for r in e["payload"]["readings"]] == [
            f"{n}.000" for n in range(1, 6)
        ]
        link = await sink.failure(dtu_id="B1", meter_id="B1-02", reason="no reply", at=utcnow())
        assert link is not None
        assert link.consecutive_failures == 1
    finally:
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer


async def test_remembered_links_follow_a_lost_dtu_once_forgotten(store: ServiceStore) -> None:
    """The batches remember link states; a DTU lost (written by its bus loop) and then
    forgotten by the sink makes the next reading announce the meter online again."""
    sink = ReadingSink(store)
    known, seen = sink.known_links, sink.dtus_written
    at = utcnow()
    await sink.write([PollOutcome("B1", "B1-01", at, reading("1.000"))])
    assert set(known) == {"B1-01"}
    assert set(seen) == {"B1"}
    await records.record_dtu_lost(store, dtu_id="B1", reason="cable", at=at)
    sink.forget("B1", ["B1-01", "B1-02"])
    assert not known
    assert not seen
    later = at + timedelta(seconds=5)
    (link,) = await sink.write([PollOutcome("B1", "B1-01", later, reading("1.500"))])
    assert link is not None
    assert link.online
    statuses = [(m, v) for t, m, v in await said(store) if t == "meter.status.v1"]
    assert statuses == [("B1-01", True), ("B1-01", False), ("B1-02", False), ("B1-01", True)]
    assert (await records.get_meter(store, "B1-01")).online
    (dtu,) = await records.list_dtus(store, "B1")
    assert dtu.online  # the first reading after the loss writes the DTU row again


async def test_a_busy_dtu_row_is_written_once_per_interval(store: ServiceStore) -> None:
    sink = ReadingSink(store)
    at = utcnow()
    for n in range(3):
        outcome = PollOutcome("B1", "B1-01", at + timedelta(seconds=n), reading(f"{n}.000"))
        await sink.write([outcome])
    assert sink.dtus_written == {"B1": at}  # the first reading only, within DTU_SEEN_EVERY
    (dtu,) = await records.list_dtus(store, "B1")
    assert dtu.last_seen_at == at
    meter = await records.get_meter(store, "B1-01")
    assert meter.last_reading is not None
    assert meter.last_reading.energy_kwh == Decimal("2.000")


async def test_a_reading_taken_before_a_commands_read_back_keeps_the_relay_it_left(
    store: ServiceStore,
) -> None:
    """A command records its result without waiting for the readings queued before it; a
    reading taken before the read-back must not put the old relay back, a later one does."""
    at = utcnow()
    await write_outcomes(store, [PollOutcome("B1", "B1-01", at, reading("1.000"))])
    # The command trips the relay (read back at +2 s, recorded by finish_command).
    async with store.unit_of_work() as uow:
        await uow.session.execute(update(meters).where(meters.c.id == "B1-01").values(relay="open"))
    fence = {"B1-01": at + timedelta(seconds=2)}
    stale = PollOutcome("B1", "B1-01", at + timedelta(seconds=1), reading("1.100"))
    await write_outcomes(store, [stale], relay_set_at=fence)
    meter = await records.get_meter(store, "B1-01")
    assert meter.relay == "open"
    assert meter.last_reading is not None
    assert meter.last_reading.energy_kwh == Decimal("1.100")  # the rest of it is kept
    assert "B1-01" in fence
    newer = PollOutcome("B1", "B1-01", at + timedelta(seconds=3), reading("1.200"))
    await write_outcomes(store, [newer], relay_set_at=fence)
    assert (await records.get_meter(store, "B1-01")).relay == "closed"
    assert fence == {}  # a newer reading is in: the fence is dropped


async def test_sharded_readings_leave_as_one_batch_per_shard(store: ServiceStore) -> None:
    # PREPAID_READING_SHARDS=4: B1-01 is on shard 2, B1-02 on shard 0.
    at = utcnow()
    outcomes = [
        PollOutcome("B1", "B1-01", at, reading("1.000")),
        PollOutcome("B1", "B1-02", at, reading("2.000")),
        PollOutcome("B1", "B1-01", at + timedelta(seconds=1), reading("1.500")),
        PollOutcome("B1", "B1-02", at + timedelta(seconds=1), reading("2.500")),
    ]
    await write_outcomes(store, outcomes, source="c-7", shards=4)
    async with store.sessionmaker() as session:
        rows = await session.execute(select(store.outbox.c.envelope).order_by(store.outbox.c.id))
        batches = [
            (e["routing_key"], [(r["meter_id"], r["energy_kwh"]) for r in e["payload"]["readings"]])
            for (e,) in rows
            if e["type"] == "reading.batch.v1"
        ]
    assert batches == [
        ("reading.batch.v1.shard=0.c-7", [("B1-02", "2.000"), ("B1-02", "2.500")]),
        ("reading.batch.v1.shard=2.c-7", [("B1-01", "1.000"), ("B1-01", "1.500")]),
    ]
