"""The collector service: polls meters on its DTUs, says readings, executes relay commands."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query, Response
from prepaid_common.bus import Handler, MessageBus
from prepaid_common.contracts import CommandRequestV1, Envelope, open_envelope, utcnow
from prepaid_common.errors import Conflict, ServiceError
from prepaid_common.outbox import UnitOfWork
from prepaid_common.service import Service
from sqlalchemy.ext.asyncio import AsyncEngine

from collector import records
from collector.domain import CommandOpener, MeterProfile, PlainCommandOpener
from collector.metrics import DTUS_ONLINE, METERS_KNOWN, METERS_ONLINE
from collector.polling import DtuPoller, ReadFailed
from collector.profiles import load_profiles
from collector.records import DtuRegistration, DtuView, MeterView
from collector.tables import metadata, plumbing

log = logging.getLogger(__name__)


class MeterUnreachable(ServiceError):
    """An on-demand read that got no usable answer from the meter."""

    status_code = 504
    code = "meter_unreachable"


class CollectorService(Service):
    name = "collector"
    migrations_dir = Path(__file__).parent / "migrations"
    tables = plumbing
    metadata = metadata

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        bus: MessageBus,
        poll_interval: float = 5.0,
        request_timeout: float = 1.0,
        command_opener: CommandOpener | None = None,
        profiles: Mapping[str, MeterProfile] | None = None,
    ) -> None:
        super().__init__(engine=engine, bus=bus)
        if poll_interval <= 0 or request_timeout <= 0:
            raise ValueError("poll_interval and request_timeout must be positive")
        self.poll_interval = poll_interval
        self.request_timeout = request_timeout
        self.command_opener: CommandOpener = command_opener or PlainCommandOpener()
        self.profiles: Mapping[str, MeterProfile] = (
            profiles if profiles is not None else load_profiles()
        )
        self._pollers: dict[str, tuple[DtuPoller, asyncio.Task[None]]] = {}
        self._dtus_changed = asyncio.Event()
        self._supervising = False

    # --- bus ------------------------------------------------------------------------------
    def subscriptions(self) -> Sequence[tuple[str, Sequence[str], Handler]]:
        accept = self.store.idempotent(self._accept_command)

        async def on_command_request(envelope: Envelope) -> None:
            await accept(envelope)
            # Only now is the command committed: the bus loop will find it.
            self._wake_owner(str(envelope.payload.get("meter_id", "")))

        return [("commands", ["command.request.v1.#"], on_command_request)]

    async def _accept_command(self, uow: UnitOfWork, envelope: Envelope) -> None:
        request = open_envelope(envelope, CommandRequestV1)
        await records.accept_command(uow, request, at=utcnow())

    def _wake_owner(self, meter_id: str) -> None:
        for poller, _task in self._pollers.values():
            if meter_id in poller.meter_ids:
                poller.commands_waiting()

    # --- loops ----------------------------------------------------------------------------
    async def background(self) -> Sequence[asyncio.Task[None]]:
        return [asyncio.create_task(self._supervise(), name="collector-dtus")]

    async def _supervise(self) -> None:
        """Keep one bus loop per enabled DTU, following registrations as they come."""
        self._supervising = True
        try:
            while True:
                self._dtus_changed.clear()
                try:
                    await self._follow_registrations()
                except Exception:
                    # A database hiccup must not stop the buses already being polled.
                    log.exception("cannot follow DTU registrations; retrying")
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.poll_interval):
                        await self._dtus_changed.wait()
        finally:
            self._supervising = False
            pollers, self._pollers = list(self._pollers.values()), {}
            await _stop_pollers(pollers)

    async def _follow_registrations(self) -> None:
        wanted = set(await records.enabled_dtu_ids(self.store))
        for dtu_id in list(self._pollers):
            if dtu_id not in wanted or self._pollers[dtu_id][1].done():
                await _stop_pollers([self._pollers.pop(dtu_id)])
        for dtu_id in sorted(wanted - set(self._pollers)):
            self._start_poller(dtu_id)
        online, known, dtus_online = await records.count_online(self.store)
        METERS_ONLINE.set(online)
        METERS_KNOWN.set(known)
        DTUS_ONLINE.set(dtus_online)

    def _start_poller(self, dtu_id: str) -> None:
        poller = DtuPoller(
            dtu_id,
            store=self.store,
            profiles=self.profiles,
            opener=self.command_opener,
            poll_interval=self.poll_interval,
            request_timeout=self.request_timeout,
        )
        task = asyncio.create_task(poller.run(), name=f"collector-dtu-{dtu_id}")
        self._pollers[dtu_id] = (poller, task)
        log.info("polling DTU", extra={"dtu_id": dtu_id})

    # --- operations -----------------------------------------------------------------------
    async def register_dtu(self, body: DtuRegistration) -> tuple[DtuView, bool]:
        """Create or update a DTU and its meters; polling follows without a restart."""
        created = await records.register_dtu(self.store, body, self.profiles)
        for poller, _task in self._pollers.values():
            poller.reload()  # a meter may have moved between DTUs
        if self._supervising and body.enabled and body.id not in self._pollers:
            self._start_poller(body.id)  # at once, so that a read-now can follow
        self._dtus_changed.set()
        (view,) = await records.list_dtus(self.store, body.id)
        return view, created

    async def read_meter_now(self, meter_id: str) -> MeterView:
        """Read one meter ahead of its poll and return what it says now."""
        meter = await records.get_meter(self.store, meter_id)
        entry = self._pollers.get(meter.dtu_id)
        if entry is None or entry[1].done():
            raise Conflict(f"DTU {meter.dtu_id} is not being polled by this collector")
        poller, _task = entry
        # Room for the commands queued ahead of it and every block of the read.
        deadline = self.request_timeout * 10 + self.poll_interval
        try:
            async with asyncio.timeout(deadline):
                await poller.read_now(meter_id)
        except ReadFailed as error:
            raise MeterUnreachable(f"meter {meter_id}: {error}") from None
        except TimeoutError:
            raise MeterUnreachable(f"meter {meter_id}: the bus did not get to it in time") from None
        return await records.get_meter(self.store, meter_id)

    # --- internal API ---------------------------------------------------------------------
    def routers(self) -> Sequence[APIRouter]:
        router = APIRouter(prefix="/internal")

        @router.post("/dtus", status_code=200)
        async def register(body: DtuRegistration, response: Response) -> DtuView:
            view, created = await self.register_dtu(body)
            if created:
                response.status_code = 201
            return view

        @router.get("/dtus")
        async def list_dtus() -> dict[str, Any]:
            return {"items": await records.list_dtus(self.store)}

        @router.get("/meters")
        async def list_meters(
            limit: int = Query(100, ge=1, le=1000),
            offset: int = Query(0, ge=0),
            ids: str | None = Query(None, description="comma-separated meter ids"),
        ) -> dict[str, Any]:
            wanted = None if ids is None else [i.strip() for i in ids.split(",") if i.strip()]
            items, total = await records.list_meters(
                self.store, limit=limit, offset=offset, ids=wanted
            )
            return {"items": items, "total": total, "limit": limit, "offset": offset}

        @router.get("/meters/{meter_id}")
        async def get_meter(meter_id: str) -> MeterView:
            return await records.get_meter(self.store, meter_id)

        @router.post("/meters/{meter_id}/read")
        async def read_meter(meter_id: str) -> MeterView:
            return await self.read_meter_now(meter_id)

        return [router]


async def _stop_pollers(pollers: Sequence[tuple[DtuPoller, asyncio.Task[None]]]) -> None:
    """Stop bus loops and wait for them to end."""
    for poller, task in pollers:
        poller.stop()
        task.cancel()
    pending = {task for _poller, task in pollers}
    while pending:
        _done, pending = await asyncio.wait(pending, timeout=1.0)
        # Python 3.11's wait_for (inside pymodbus) can swallow a cancel: ask again.
        for task in pending:
            task.cancel()
