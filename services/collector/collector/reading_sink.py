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
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from prepaid_common.contracts import MeterStatusV1, ReadingV1
from prepaid_common.outbox import ServiceStore
from sqlalchemy import bindparam, select, update

from collector.domain import DecodedReading, MeterLink
from collector.tables import dtus, meters

log = logging.getLogger(__name__)


@dataclass
class _Outcome:
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
        max_batch: int = 500,
        max_wait: float = 0.02,
        max_queued: int = 5000,
    ) -> None:
        self._store = store
        self._max_batch = max_batch
        self._max_wait = max_wait
        self._max_queued = max_queued
        self._queue: list[_Outcome] = []
        self._arrived = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        # Tickets: the n-th outcome queued is settled once ``_settled >= n``.
        self._queued_count = 0
        self._settled = 0
        self._progress = asyncio.Condition()

    async def reading(
        self, *, dtu_id: str, meter_id: str, reading: DecodedReading, at: datetime
    ) -> int:
        """Queue a good poll; return its ticket for ``settled``."""
        await self._room.wait()  # backpressure: a slow database slows the buses
        return self._queued(_Outcome(dtu_id, meter_id, at, reading))

    async def failure(
        self, *, dtu_id: str, meter_id: str, reason: str, at: datetime
    ) -> MeterLink | None:
        """Queue a failed poll and return the meter's link state once written."""
        await self._room.wait()
        link: asyncio.Future[MeterLink | None] = asyncio.get_running_loop().create_future()
        self._queued(_Outcome(dtu_id, meter_id, at, None, reason, link))
        return await link

    async def settled(self, ticket: int) -> None:
        """Wait until the outcome with this ticket, and all before it, were handled."""
        async with self._progress:
            await self._progress.wait_for(lambda: self._settled >= ticket)

    def _queued(self, outcome: _Outcome) -> int:
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
            links = await write_outcomes(self._store, batch)
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
    store: ServiceStore, outcomes: Sequence[_Outcome]
) -> list[MeterLink | None]:
    """Write poll outcomes in one unit of work; return each meter's link after its outcome."""
    if not outcomes:
        return []
    async with store.unit_of_work() as uow:
        session = uow.session
        # One lock order everywhere: DTU rows (here sorted), then meter rows (sorted).
        seen: dict[str, datetime] = {}
        for outcome in outcomes:
            if outcome.reading is not None:
                seen[outcome.dtu_id] = max(outcome.at, seen.get(outcome.dtu_id, outcome.at))
        if seen:
            await session.execute(
                update(dtus)
                .where(dtus.c.id == bindparam("b_id"))
                .values(online=True, last_seen_at=bindparam("b_at")),
                [{"b_id": dtu_id, "b_at": at} for dtu_id, at in sorted(seen.items())],
            )
        ids = sorted({outcome.meter_id for outcome in outcomes})
        rows = await session.execute(
            select(meters.c.id, meters.c.online, meters.c.consecutive_failures).where(
                meters.c.id.in_(ids)
            )
        )
        links: dict[str, MeterLink] = {
            row.id: MeterLink(row.online, row.consecutive_failures) for row in rows
        }
        last: dict[str, _Outcome] = {}
        results: list[MeterLink | None] = []
        for outcome in outcomes:
            link = links.get(outcome.meter_id)
            if link is None:
                results.append(None)  # removed while it was being read
                continue
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
                await uow.emit(
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
        read = [
            {
                "b_id": meter_id,
                "b_online": links[meter_id].online,
                "b_failures": links[meter_id].consecutive_failures,
                "b_relay": outcome.reading.relay,
                "b_energy": outcome.reading.energy_kwh,
                "b_power": outcome.reading.power_kw,
                "b_at": outcome.at,
            }
            for meter_id, outcome in sorted(last.items())
            if outcome.reading is not None
        ]
        if read:
            await session.execute(
                update(meters)
                .where(meters.c.id == bindparam("b_id"))
                .values(
                    online=bindparam("b_online"),
                    consecutive_failures=bindparam("b_failures"),
                    relay=bindparam("b_relay"),
                    last_energy_kwh=bindparam("b_energy"),
                    last_power_kw=bindparam("b_power"),
                    last_read_at=bindparam("b_at"),
                ),
                read,
            )
        failed_only = [
            {
                "b_id": meter_id,
                "b_online": link.online,
                "b_failures": link.consecutive_failures,
            }
            for meter_id, link in sorted(links.items())
            if meter_id not in last and any(o.meter_id == meter_id for o in outcomes)
        ]
        if failed_only:
            await session.execute(
                update(meters)
                .where(meters.c.id == bindparam("b_id"))
                .values(online=bindparam("b_online"), consecutive_failures=bindparam("b_failures")),
                failed_only,
            )
    return results
