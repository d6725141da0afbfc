"""What the collector's API does: register DTUs, show meters and DTUs, read meters now.

Each use case is one unit of work against the store; those that reach a meter ask the
running bus loops (the ``Fleet``) and raise service errors, never HTTP ones.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping
from typing import Protocol

from prepaid_common.contracts import utcnow
from prepaid_common.contracts.api.collector import (
    DtuList,
    DtuRegistration,
    DtuView,
    MeterPage,
    MeterView,
    ReadAllQueued,
)
from prepaid_common.errors import TimedOut
from prepaid_common.outbox import ServiceStore

from collector import records
from collector.domain import Profile
from collector.domain.registration import check_registration
from collector.polling import DtuPoller, ReadFailed


class MeterUnreachable(TimedOut):
    """An on-demand read that got no usable answer from the meter."""

    code = "meter_unreachable"


class Fleet(Protocol):
    """The bus loops this replica runs, as the use cases see them."""

    poll_interval: float
    request_timeout: float

    def running_poller(self, dtu_id: str) -> DtuPoller | None:
        """Return the live bus loop of a DTU on this replica, or None."""
        ...

    def follow_registration(self, body: DtuRegistration) -> None:
        """Let the bus loops follow a DTU just registered or changed."""
        ...

    def read_all_here(self, request_id: int) -> ReadAllQueued:
        """Queue a read of every meter this replica polls, for a read request of its own."""
        ...


class CollectorOperations:
    """The use cases behind the collector's internal API."""

    def __init__(
        self, *, store: ServiceStore, profiles: Mapping[str, Profile], fleet: Fleet
    ) -> None:
        self.store = store
        self.profiles = profiles
        self.fleet = fleet

    async def register_dtu(self, *, body: DtuRegistration) -> tuple[DtuView, bool]:
        """Create or update a DTU and its meters; polling follows without a restart."""
        check_registration(body, self.profiles)
        created = await records.register_dtu(self.store, body, self.profiles)
        self.fleet.follow_registration(body)
        (view,) = await records.list_dtus(self.store, body.id)
        return view, created

    async def list_dtus(self) -> DtuList:
        """Return every DTU with its meters' ids."""
        return DtuList(items=await records.list_dtus(self.store))

    async def list_meters(
        self, *, limit: int, offset: int, ids: Collection[str] | None
    ) -> MeterPage:
        """Return a page of meters (ordered by id), all or those of the ids given."""
        items, total = await records.list_meters(self.store, limit=limit, offset=offset, ids=ids)
        return MeterPage(items=items, total=total, limit=limit, offset=offset)

    async def get_meter(self, *, meter_id: str) -> MeterView:
        """Return one meter, or NotFound."""
        return await records.get_meter(self.store, meter_id)

    async def read_meter_now(self, *, meter_id: str) -> MeterView:
        """Read one meter ahead of its poll and return what it says now."""
        meter = await records.get_meter(self.store, meter_id)
        # Room for the commands queued ahead of it and every block of the read.
        deadline = self.fleet.request_timeout * 10 + self.fleet.poll_interval
        poller = self.fleet.running_poller(meter.dtu_id)
        if poller is None:
            if not meter.dtu_online:
                # No replica reaches the DTU now (a dial-in DTU that is not connected, say).
                raise MeterUnreachable(f"meter {meter_id}: DTU {meter.dtu_id} is offline")
            return await self._read_elsewhere(meter, deadline)
        future = poller.read_now(meter_id)
        assert future is not None
        try:
            async with asyncio.timeout(deadline):
                await future
        except ReadFailed as error:
            raise MeterUnreachable(f"meter {meter_id}: {error}") from None
        except TimeoutError:
            raise MeterUnreachable(f"meter {meter_id}: the bus did not get to it in time") from None
        return await records.get_meter(self.store, meter_id)

    async def _read_elsewhere(self, meter: MeterView, deadline: float) -> MeterView:
        """Ask the replica polling the meter's DTU, and wait for the reading to land."""
        before = await records.last_read_at(self.store, meter.id)
        await records.request_reads(self.store, meter_id=meter.id, at=utcnow())

        async def fresh() -> bool:
            return await records.last_read_at(self.store, meter.id) != before

        try:
            async with asyncio.timeout(deadline + 1.0):
                # Another process writes the reading: there is no event here to wait on.
                while not await fresh():  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
        except TimeoutError:
            raise MeterUnreachable(
                f"meter {meter.id}: no reading in time (its DTU is offline, or no replica "
                "polls it now)"
            ) from None
        return await records.get_meter(self.store, meter.id)

    async def read_all_now(self) -> ReadAllQueued:
        """Queue a read of every meter on every replica, ahead of the poll cycles."""
        request_id = await records.request_reads(self.store, meter_id=None, at=utcnow())
        return self.fleet.read_all_here(request_id)
