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
    FinalReading,
    MeterMoved,
    MeterPage,
    MeterRegistration,
    MeterView,
    MoveMeter,
    ReadAllQueued,
    Removed,
)
from prepaid_common.errors import Conflict, Invalid, ServiceError, Unavailable
from prepaid_common.outbox import ServiceStore

from collector import records
from collector.domain import Dlt645Profile, Profile
from collector.domain.commands import supported_commands
from collector.domain.registration import check_meter_address, check_registration, stored_address
from collector.polling import DTU_OFFLINE, DtuPoller, ReadFailed

# The longest an on-demand read keeps its caller waiting. A person (or a front end behind a
# proxy with its own 10-s limit) wants an answer in seconds: a meter that has not been read
# by then (silent, or a bus busy with queued commands) is better asked again (503).
ON_DEMAND_READ_LIMIT_SECONDS = 8.0


class MeterUnreachable(Unavailable):
    """An on-demand read that got no usable answer from the meter (503: try again later)."""

    code = "meter_unreachable"


class DtuOffline(Conflict):
    """An on-demand read of a meter whose DTU is not connected (409: nothing to ask now)."""

    code = "dtu_offline"


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

    async def set_dtu_enabled(self, *, dtu_id: str, enabled: bool) -> DtuView:
        """Turn a DTU's polling on or off; its loop follows within a poll interval."""
        await records.set_dtu_enabled(self.store, dtu_id, enabled)
        self._reload(dtu_id)
        (view,) = await records.list_dtus(self.store, dtu_id)
        return view

    async def set_meter_enabled(self, *, meter_id: str, enabled: bool) -> MeterView:
        """Turn a meter's polling on or off."""
        dtu_id = await records.set_meter_enabled(self.store, meter_id, enabled)
        self._reload(dtu_id)
        return await records.get_meter(self.store, meter_id)

    async def remove_meter(self, *, meter_id: str) -> Removed:
        """Remove a meter (the caller checked that no account has it bound)."""
        meter = await records.get_meter(self.store, meter_id)
        await records.remove_meters(self.store, [meter_id])
        self._reload(meter.dtu_id)
        return Removed(meter_ids=[meter_id])

    async def remove_dtu(self, *, dtu_id: str) -> Removed:
        """Remove a DTU and its meters (the caller checked that none is bound)."""
        meter_ids = await records.remove_dtu(self.store, dtu_id)
        self._reload(dtu_id)
        return Removed(dtu_id=dtu_id, meter_ids=meter_ids)

    async def move_meter(self, *, meter_id: str, body: MoveMeter) -> MeterMoved:
        """Move a meter to another place: read it at the old one first (its final reading,
        billed as any reading), then poll it at the new one, identified again there."""
        meter = await records.get_meter(self.store, meter_id)
        profile_name = body.profile or meter.profile
        profile = self.profiles.get(profile_name)
        if profile is None:
            raise Invalid(f"meter {meter_id}: unknown profile {profile_name!r}")
        kind = await records.dtu_kind(self.store, body.dtu_id)
        target = MeterRegistration(id=meter_id, address=body.bus_address, profile=profile_name)
        check_meter_address(kind, target, profile)
        address = stored_address(target, profile)
        if (body.dtu_id, address, profile_name) == (meter.dtu_id, meter.address, meter.profile):
            raise Invalid(f"meter {meter_id} is at DTU {body.dtu_id} address {address} already")
        final = await self._final_reading(meter)
        from_dtu, from_address, from_profile = await records.move_meter(
            self.store,
            meter_id=meter_id,
            to_dtu_id=body.dtu_id,
            address=address,
            profile=profile_name,
            profile_is_dlt645=isinstance(profile, Dlt645Profile),
            final=None if final is None else (final.read_at, final.energy_kwh),
            reason=body.reason,
            at=utcnow(),
        )
        self._reload(from_dtu, body.dtu_id)
        return MeterMoved(
            meter=await records.get_meter(self.store, meter_id),
            from_dtu_id=from_dtu,
            from_address=from_address,
            from_profile=from_profile,
            final_reading=final,
        )

    async def _final_reading(self, meter: MeterView) -> FinalReading | None:
        """Read the meter now where it is; if it cannot be, its last reading kept."""
        if meter.enabled:
            try:
                now = await self.read_meter_now(meter_id=meter.id)
            except ServiceError:
                now = None
            if now is not None and now.last_reading is not None:
                last = now.last_reading
                return FinalReading(
                    read_at=last.read_at, energy_kwh=last.energy_kwh, source="read_now"
                )
        kept = (await records.get_meter(self.store, meter.id)).last_reading
        if kept is None:
            return None
        return FinalReading(read_at=kept.read_at, energy_kwh=kept.energy_kwh, source="last_reading")

    def _reload(self, *dtu_ids: str) -> None:
        """Let the bus loops of these DTUs on this replica re-read their settings now
        (other replicas follow the revision within a poll interval)."""
        for dtu_id in dtu_ids:
            poller = self.fleet.running_poller(dtu_id)
            if poller is not None:
                poller.reload()

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
        items = [self._with_commands(meter) for meter in items]
        return MeterPage(items=items, total=total, limit=limit, offset=offset)

    async def get_meter(self, *, meter_id: str) -> MeterView:
        """Return one meter with the commands its model carries out, or NotFound."""
        return self._with_commands(await records.get_meter(self.store, meter_id))

    def _with_commands(self, meter: MeterView) -> MeterView:
        # A command the model cannot carry out is refused at the API, never queued.
        profile = self.profiles.get(meter.profile)
        kinds = [] if profile is None else list(supported_commands(profile))
        return meter.model_copy(update={"commands": kinds})

    async def read_meter_now(self, *, meter_id: str) -> MeterView:
        """Read one meter ahead of its poll and return what it says now."""
        meter = await records.get_meter(self.store, meter_id)
        # Room for the commands queued ahead of it and every block of the read, within
        # what a caller waits for.
        deadline = min(
            self.fleet.request_timeout * 10 + self.fleet.poll_interval,
            ON_DEMAND_READ_LIMIT_SECONDS,
        )
        if not meter.enabled:
            raise Conflict(f"meter {meter_id} is disabled: enable it to read it")
        poller = self.fleet.running_poller(meter.dtu_id)
        if poller is None:
            if not meter.dtu_online:
                # No replica reaches the DTU now (a dial-in DTU that is not connected, say).
                raise DtuOffline(
                    f"meter {meter_id}: its DTU {meter.dtu_id} is offline; the meter is "
                    "read again once the DTU is back (see GET /dtus for why and when)"
                )
            return await self._read_elsewhere(meter, deadline)
        if not poller.link_up and not meter.dtu_online:
            raise DtuOffline(
                f"meter {meter_id}: its DTU {meter.dtu_id} is offline; the meter is read "
                "again once the DTU is back (see GET /dtus for why and when)"
            )
        future = poller.read_now(meter_id)
        assert future is not None
        try:
            async with asyncio.timeout(deadline):
                await future
        except ReadFailed as error:
            if str(error).startswith(DTU_OFFLINE):
                raise DtuOffline(f"meter {meter_id}: its DTU {meter.dtu_id}: {error}") from None
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
