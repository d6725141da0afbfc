"""Poll outcomes from every bus loop, written in batches: one transaction for many reads.

At city scale a collector records hundreds of readings a second; one transaction (and one
commit) per reading would cost more than reading the meter. Bus loops hand each outcome to
the sink and move on to the next request; the sink writes everything queued in one unit of
work per batch, in queue order, so one meter's outcomes land in the order they happened.
Before a loop records something else about its DTU (the link lost, a command's result) it
waits for its own queued outcomes to land (``settled``), so an older reading cannot
overwrite newer news.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

from prepaid_common.contracts import MeterStatusV1, ReadingBatchV1, ReadingV1
from prepaid_common.contracts.sharding import shard_of, sharded_routing_key
from prepaid_common.db import ScaledDecimal
from prepaid_common.outbox import ServiceStore, UnitOfWork
from sqlalchemy import bindparam, func, select, text, update

from collector.domain import DecodedReading, MeterLink
from collector.domain.detail import reading_detail_text
from collector.tables import dtus, meters

log = logging.getLogger(__name__)


@dataclass
class PollOutcome:
    """One poll's outcome on its way to the database: a reading, or why there was none."""

    dtu_id: str
    meter_id: str
    at: datetime
    reading: DecodedReading | None  # None: the poll failed
    reason: str = ""
    link: asyncio.Future[MeterLink | None] | None = None


class ReadingSink:
    """One writer for the poll outcomes of every bus loop in this process."""

    def __init__(
        self,
        store: ServiceStore,
        *,
        source: str = "collector",
        # Shards of the readings (PREPAID_READING_SHARDS): each batch leaves as one message
        # per shard it touches; 1 keeps one message, routed as always.
        shards: int = 1,
        # Each batch costs a few transactions (its own, the relay's read and delete), so
        # bigger batches cost less per reading: 250 within 50 ms took 125 µs of CPU per poll
        # against 170 µs for 100 within 20 ms; 500 within 100 ms no better and held the
        # event loop long enough to slow the buses (docs/benchmarks.md).
        max_batch: int = 250,
        max_wait: float = 0.05,
        max_queued: int = 5000,
    ) -> None:
        self._store = store
        self._source = source
        if shards < 1:
            raise ValueError("shards must be at least 1")
        self._shards = shards
        self._max_batch = max_batch
        self._max_wait = max_wait
        self._max_queued = max_queued
        self._queue: list[PollOutcome] = []
        self._arrived = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        # Tickets: the n-th outcome queued is settled once ``_settled >= n``.
        self._queued_count = 0
        self._settled = 0
        self._progress = asyncio.Condition()
        # Link states of the meters this process polls, and when each DTU's last-seen
        # time was written: the batches then read and write only what changed.
        self._links: dict[str, MeterLink] = {}
        self._dtus_written: dict[str, datetime] = {}
        # When a command last set each meter's relay (read back from the meter): a reading
        # taken before that, still queued here, must not put the old relay back.
        self._relay_set_at: dict[str, datetime] = {}

    @property
    def known_links(self) -> Mapping[str, MeterLink]:
        """The link states the sink remembers between batches (a live, read-only view)."""
        return MappingProxyType(self._links)

    @property
    def dtus_written(self) -> Mapping[str, datetime]:
        """When the sink last wrote each DTU's last-seen time (a live, read-only view)."""
        return MappingProxyType(self._dtus_written)

    async def write(self, outcomes: Sequence[PollOutcome]) -> list[MeterLink | None]:
        """Write outcomes at once, in one unit of work, with what the sink remembers."""
        return await write_outcomes(
            self._store,
            outcomes,
            self._links,
            self._dtus_written,
            source=self._source,
            relay_set_at=self._relay_set_at,
            shards=self._shards,
        )

    def relay_set(self, meter_id: str, at: datetime) -> None:
        """Note that a command left the meter's relay as read back at ``at``: readings
        taken before then, still queued, keep the relay the command recorded.

        This replaces waiting for every queued reading before recording a command's result:
        at 10,000 polled meters the queue ran about three seconds behind, and every trip
        and close waited for it (bench-relay-latency)."""
        self._relay_set_at[meter_id] = max(at, self._relay_set_at.get(meter_id, at))

    def forget(self, dtu_id: str, meter_ids: Iterable[str]) -> None:
        """Drop what the sink remembers of a DTU and its meters: someone else wrote them.

        A bus loop calls it once its outcomes are settled and before it records anything
        itself (the DTU lost), and when it starts or ends (another replica may have polled
        the DTU meanwhile); the next batch reads those meters' rows again.
        """
        self._dtus_written.pop(dtu_id, None)
        for meter_id in meter_ids:
            self._links.pop(meter_id, None)

    async def reading(
        self, *, dtu_id: str, meter_id: str, reading: DecodedReading, at: datetime
    ) -> int:
        """Queue a good poll; return its ticket for ``settled``."""
        if not self._room.is_set():
            await self._room.wait()  # backpressure: a slow database slows the buses
        return self._queued(PollOutcome(dtu_id, meter_id, at, reading))

    async def failure(
        self, *, dtu_id: str, meter_id: str, reason: str, at: datetime
    ) -> MeterLink | None:
        """Queue a failed poll and return the meter's link state once written."""
        await self._room.wait()
        link: asyncio.Future[MeterLink | None] = asyncio.get_running_loop().create_future()
        self._queued(PollOutcome(dtu_id, meter_id, at, None, reason, link))
        return await link

    async def settled(self, ticket: int) -> None:
        """Wait until the outcome with this ticket, and all before it, were handled."""
        async with self._progress:
            await self._progress.wait_for(lambda: self._settled >= ticket)

    def _queued(self, outcome: PollOutcome) -> int:
        self._queue.append(outcome)
        self._queued_count += 1
        if len(self._queue) >= self._max_queued:
            self._room.clear()
        self._arrived.set()
        return self._queued_count

    async def run(self) -> None:
        """Write batches until cancelled; what is queued then is written first."""
        try:
            while True:
                await self._arrived.wait()
                if len(self._queue) < self._max_batch:
                    # A short wait gathers the readings of many buses into one commit.
                    await asyncio.sleep(self._max_wait)
                write = asyncio.ensure_future(self._write_some())
                try:
                    # A cancel must not cut a transaction in half: SQLite would keep its
                    # write lock on a connection being torn down, and the next writer wait.
                    await asyncio.shield(write)
                except asyncio.CancelledError:
                    await write
                    raise
        finally:
            with contextlib.suppress(Exception):
                while self._queue:
                    await self._write_some()

    async def _write_some(self) -> None:
        batch = self._queue[: self._max_batch]
        del self._queue[: self._max_batch]
        if not self._queue:
            self._arrived.clear()
        if len(self._queue) < self._max_queued:
            self._room.set()
        try:
            links = await self.write(batch)
        except Exception as error:
            # A reading lost here is covered by the next one (registers are cumulative).
            log.exception("cannot write poll outcomes; they are lost", extra={"count": len(batch)})
            for outcome in batch:
                if outcome.link is not None and not outcome.link.done():
                    outcome.link.set_exception(error)
        else:
            for outcome, link in zip(batch, links, strict=True):
                if outcome.link is not None and not outcome.link.done():
                    outcome.link.set_result(link)
        finally:
            async with self._progress:
                self._settled += len(batch)
                self._progress.notify_all()


async def write_outcomes(
    store: ServiceStore,
    outcomes: Sequence[PollOutcome],
    known: dict[str, MeterLink] | None = None,
    dtus_written: dict[str, datetime] | None = None,
    *,
    source: str = "collector",
    relay_set_at: dict[str, datetime] | None = None,
    shards: int = 1,
) -> list[MeterLink | None]:
    """Write poll outcomes in one unit of work; return each meter's link after its outcome.

    The batch's readings leave as one ``reading.batch.v1`` from ``source``, in outcome
    order, after the batch's status changes; with ``shards`` above 1, as one per shard the
    batch touches (``prepaid_common.contracts.sharding``), each in outcome order.

    ``known`` caches meters' link states between batches (the sink is their only writer
    while their bus is polled here: see ``ReadingSink.forget``); ``dtus_written`` says when
    each DTU's last-seen time was last written, so a busy DTU costs one row write per
    ``DTU_SEEN_EVERY``, not one per batch. Every row change is one statement per batch.
    """
    if not outcomes:
        return []
    known = {} if known is None else known
    dtus_written = {} if dtus_written is None else dtus_written
    relay_set_at = {} if relay_set_at is None else relay_set_at
    async with store.unit_of_work() as uow:
        session = uow.session
        # One lock order everywhere: DTU rows (here sorted), then meter rows (sorted).
        seen: dict[str, datetime] = {}
        for outcome in outcomes:
            if outcome.reading is not None:
                seen[outcome.dtu_id] = max(outcome.at, seen.get(outcome.dtu_id, outcome.at))
        stale = {
            dtu_id: at
            for dtu_id, at in seen.items()
            if dtu_id not in dtus_written or at - dtus_written[dtu_id] >= DTU_SEEN_EVERY
        }
        if stale:
            await session.execute(
                update(dtus)
                .where(dtus.c.id == bindparam("b_id"))
                .values(online=True, last_seen_at=bindparam("b_at")),
                [{"b_id": dtu_id, "b_at": at} for dtu_id, at in sorted(stale.items())],
            )
        unknown = sorted({o.meter_id for o in outcomes if o.meter_id not in known})
        links: dict[str, MeterLink] = {}
        if unknown:
            rows = await session.execute(
                select(meters.c.id, meters.c.online, meters.c.consecutive_failures).where(
                    meters.c.id.in_(unknown)
                )
            )
            links = {row.id: MeterLink(row.online, row.consecutive_failures) for row in rows}
        links.update((m, known[m]) for o in outcomes if (m := o.meter_id) in known)
        last: dict[str, PollOutcome] = {}
        touched: set[str] = set()
        readings: list[ReadingV1] = []
        results: list[MeterLink | None] = []
        for outcome in outcomes:
            link = links.get(outcome.meter_id)
            if link is None:
                results.append(None)  # removed while it was being read
                continue
            touched.add(outcome.meter_id)
            if outcome.reading is not None:
                link, came_online = link.after_success()
                last[outcome.meter_id] = outcome
                if came_online:
                    await uow.emit(
                        MeterStatusV1(
                            meter_id=outcome.meter_id,
                            dtu_id=outcome.dtu_id,
                            online=True,
                            at=outcome.at,
                        )
                    )
                readings.append(
                    ReadingV1(
                        meter_id=outcome.meter_id,
                        dtu_id=outcome.dtu_id,
                        read_at=outcome.at,
                        energy_kwh=outcome.reading.energy_kwh,
                        tou_kwh=dict(outcome.reading.tou_kwh) if outcome.reading.tou_kwh else None,
                        relay=outcome.reading.relay,
                        power_kw=outcome.reading.power_kw,
                        local_credit=outcome.reading.local_credit,
                        purchase_count=outcome.reading.purchase_count,
                    )
                )
            else:
                link, went_offline = link.after_failure()
                if went_offline:
                    await uow.emit(
                        MeterStatusV1(
                            meter_id=outcome.meter_id,
                            dtu_id=outcome.dtu_id,
                            online=False,
                            at=outcome.at,
                            reason=outcome.reason,
                        )
                    )
            links[outcome.meter_id] = link
            results.append(link)
        await _emit_readings(uow, readings, source=source, shards=shards)
        # A reading older than a command's read-back keeps the stored relay (NULL: keep).
        read = [
            (
                meter_id,
                links[meter_id].online,
                links[meter_id].consecutive_failures,
                None
                if meter_id in relay_set_at and outcome.at <= relay_set_at[meter_id]
                else outcome.reading.relay,
                outcome.reading.energy_kwh,
                outcome.reading.power_kw,
                reading_detail_text(outcome.reading),
                outcome.at,
            )
            for meter_id, outcome in sorted(last.items())
            if outcome.reading is not None
        ]
        failed_only = [
            (meter_id, links[meter_id].online, links[meter_id].consecutive_failures)
            for meter_id in sorted(touched - set(last))
        ]
        dialect = session.get_bind().dialect
        if dialect.name == "postgresql":
            # One statement each: an executemany runs one UPDATE per row on the server.
            if read:
                await session.execute(
                    _UPDATE_READ_METERS, {"rows": _read_meters_json(read, dialect)}
                )
            if failed_only:
                ids, online, failures = (list(column) for column in zip(*failed_only, strict=True))
                await session.execute(
                    _UPDATE_FAILED_METERS, {"ids": ids, "online": online, "failures": failures}
                )
        else:  # SQLite has no column list for a VALUES alias; in process, rows are cheap
            names = ("b_id", *(f"b_{n}" for n in _READ_COLUMNS), "b_at")
            if read:
                await session.execute(
                    update(meters)
                    .where(meters.c.id == bindparam("b_id"))
                    .values(
                        {n: bindparam(f"b_{n}") for n in _READ_COLUMNS}
                        | {
                            "relay": func.coalesce(bindparam("b_relay"), meters.c.relay),
                            "last_read_at": bindparam("b_at"),
                        }
                    ),
                    [dict(zip(names, row, strict=True)) for row in read],
                )
            if failed_only:
                await session.execute(
                    update(meters)
                    .where(meters.c.id == bindparam("b_id"))
                    .values(online=bindparam("b_on"), consecutive_failures=bindparam("b_fail")),
                    [{"b_id": m, "b_on": on, "b_fail": f} for m, on, f in failed_only],
                )
    # Only once committed: a rolled-back batch must not leave its states in the cache.
    known.update((meter_id, links[meter_id]) for meter_id in touched)
    dtus_written.update(stale)
    for meter_id, outcome in last.items():
        if meter_id in relay_set_at and outcome.at > relay_set_at[meter_id]:
            del relay_set_at[meter_id]  # a newer reading is in: the fence has done its work
    return results


# A DTU's last-seen time is written at most this often while its meters keep answering.
DTU_SEEN_EVERY = timedelta(seconds=30)

_READ_COLUMNS = (
    "online",
    "consecutive_failures",
    "relay",
    "last_energy_kwh",
    "last_power_kw",
    "last_detail",
)

# PostgreSQL: one statement of fixed text per batch. The text never changes with the batch
# size, so asyncpg prepares it once (a VALUES list would be compiled and prepared anew for
# every size). The rows go as one JSON array of arrays, not as eight arrays: asyncpg checks
# every element of an array parameter against three abstract base classes, which cost
# more than the rest of a reading's row (docs/benchmarks.md).
_UPDATE_READ_METERS = text(
    f"UPDATE {meters.name} AS m SET online = v.online, "
    "consecutive_failures = v.failures, relay = COALESCE(v.relay, m.relay), "
    "last_energy_kwh = v.energy, "
    "last_power_kw = v.power, last_detail = v.detail, last_read_at = v.at "
    "FROM (SELECT r->>0 AS id, CAST(r->>1 AS boolean) AS online, "
    "CAST(r->>2 AS integer) AS failures, r->>3 AS relay, CAST(r->>4 AS bigint) AS energy, "
    "CAST(r->>5 AS bigint) AS power, r->>6 AS detail, CAST(r->>7 AS timestamptz) AS at "
    "FROM json_array_elements(CAST(:rows AS json)) AS r) AS v WHERE m.id = v.id"
)
_UPDATE_FAILED_METERS = text(
    f"UPDATE {meters.name} AS m SET online = v.online, consecutive_failures = v.failures "
    "FROM unnest(CAST(:ids AS varchar[]), CAST(:online AS boolean[]), "
    "CAST(:failures AS integer[])) AS v(id, online, failures) WHERE m.id = v.id"
)


async def _emit_readings(
    uow: UnitOfWork, readings: list[ReadingV1], *, source: str, shards: int
) -> None:
    """Emit the readings as one batch, or one batch per shard (a meter's order kept)."""
    if not readings:
        return
    if shards == 1:
        await uow.emit(ReadingBatchV1(source=source, readings=readings))
        return
    by_shard: dict[int, list[ReadingV1]] = {}
    for reading in readings:
        by_shard.setdefault(shard_of(reading.meter_id, shards), []).append(reading)
    for shard, part in sorted(by_shard.items()):
        await uow.emit(
            ReadingBatchV1(source=source, readings=part),
            routing_key=sharded_routing_key(ReadingBatchV1.TYPE, shard, source),
        )


def _read_meters_json(rows: list[tuple[Any, ...]], dialect: Any) -> str:
    """The rows as the statement's JSON, scaled as the columns store them (the time as
    ISO 8601 with its offset: the same instant as a timestamptz)."""
    energy, power = meters.c.last_energy_kwh.type, meters.c.last_power_kw.type
    assert isinstance(energy, ScaledDecimal)
    assert isinstance(power, ScaledDecimal)
    return json.dumps(
        [
            [
                meter_id,
                online,
                failures,
                relay,
                energy.process_bind_param(energy_kwh, dialect),
                power.process_bind_param(power_kw, dialect),
                detail,
                at.isoformat(),
            ]
            for meter_id, online, failures, relay, energy_kwh, power_kw, detail, at in rows
        ]
    )
