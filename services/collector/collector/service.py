"""The collector service: polls meters on its DTUs, says readings, executes relay commands.

Several replicas may share the field and one database. A DTU we dial belongs to the live
replica that rendezvous hashing picks (``domain.ownership``; membership is a table of
leases); a DTU that dials in belongs to the replica that accepted it. Commands are kept in
the shared database by whichever replica takes them off the bus, and executed by the owner
of the meter's DTU, which looks for them at least once per poll interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Coroutine, Mapping, Sequence
from datetime import timedelta, tzinfo
from pathlib import Path
from typing import Any, TypeVar

from fastapi import APIRouter
from prepaid_common.bus import MessageBus
from prepaid_common.contracts import Envelope, utcnow
from prepaid_common.contracts.api.collector import (
    DIALLED_KINDS,
    DtuRegistration,
    DtuView,
    ReadAllQueued,
)
from prepaid_common.service import BatchSubscriptionSpec, Service
from sqlalchemy.ext.asyncio import AsyncEngine

from collector import api, handlers, records
from collector.domain import EXPIRED, CommandOpener, PlainCommandOpener, Profile
from collector.domain.ownership import owned_by
from collector.imports import ImportOperations
from collector.imports_api import imports_router
from collector.listener import DtuListener
from collector.metrics import DTUS_KNOWN, DTUS_ONLINE, METERS_KNOWN, METERS_ONLINE
from collector.operations import CollectorOperations
from collector.polling import DtuPoller
from collector.profiles import load_profiles
from collector.reading_sink import ReadingSink
from collector.tables import metadata, plumbing

log = logging.getLogger(__name__)
T = TypeVar("T")

# How long a bus loop may take to finish its turn when stopped, before it is cancelled.
STOP_GRACE_SECONDS = 1.0
# Read requests are kept this long for replicas to see, then forgotten.
READ_REQUEST_RETENTION = timedelta(minutes=10)


# Bus loops reading their settings at once; the pool holds 20 connections (and 10 more).
SETTINGS_LOADS_AT_ONCE = 8


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
        profiles: Mapping[str, Profile] | None = None,
        instance: str | None = None,
        listen_host: str = "127.0.0.1",
        listen_port: int | None = None,
        request_gap: float = 0.0,
        clock_check_interval: float = 3600.0,
        meter_timezone: tzinfo | None = None,
        lease_seconds: float = 15.0,
        reading_shards: int = 1,
    ) -> None:
        super().__init__(engine=engine, bus=bus)
        if poll_interval <= 0 or request_timeout <= 0 or lease_seconds <= 0:
            raise ValueError("poll_interval, request_timeout and lease_seconds must be positive")
        if request_gap < 0:
            raise ValueError("request_gap cannot be negative")
        self.poll_interval = poll_interval
        self.request_timeout = request_timeout
        self.request_gap = request_gap
        self.clock_check_interval = clock_check_interval
        self.meter_timezone = meter_timezone
        self.command_opener: CommandOpener = command_opener or PlainCommandOpener()
        self.profiles: Mapping[str, Profile] = profiles if profiles is not None else load_profiles()
        self.instance = instance or socket.gethostname()
        self.lease_seconds = lease_seconds
        self.reading_shards = reading_shards
        self.live_replicas: list[str] = []
        # None: no listener (tests that do not need one); 0: any free port.
        self.listener: DtuListener | None = None
        if listen_port is not None:
            self.listener = DtuListener(
                host=listen_host,
                port=listen_port,
                registrations=lambda: records.dial_in_registrations(self.store),
                handover=self._hand_over,
            )
        self._pollers: dict[str, tuple[DtuPoller, asyncio.Task[None]]] = {}
        # Thousands of bus loops start at once (a replica's start, a bulk import): each reads
        # its settings first, and all at once they took every pooled connection until the
        # pool timed out (bench-city, 3,125 DTUs). A few at a time leaves room for the rest.
        self._settings_loads = asyncio.Semaphore(SETTINGS_LOADS_AT_ONCE)
        self._revisions: dict[str, int] = {}  # each enabled DTU's settings revision, as seen
        self._dtus_changed = asyncio.Event()
        self._supervising = False
        self._own_read_requests: set[int] = set()
        self._sink: ReadingSink | None = None  # made in the running loop, by background()
        self.operations = CollectorOperations(store=self.store, profiles=self.profiles, fleet=self)

    # --- bus ------------------------------------------------------------------------------
    def batch_subscriptions(self) -> Sequence[BatchSubscriptionSpec]:
        accept = self.store.idempotent_batch(handlers.accept_commands)

        async def on_command_requests(envelopes: list[Envelope]) -> None:
            await accept(envelopes)
            # Only now are the commands committed: the bus loops will find them. On another
            # replica the owner finds them within a second (_follow_commands).
            self._wake_owners({str(envelope.payload.get("meter_id", "")) for envelope in envelopes})

        # No wait for more: a lone command goes at once, and a burst gathers by itself
        # behind the transaction in flight.
        return [
            BatchSubscriptionSpec(
                "commands", ["command.request.v1.#"], on_command_requests, max_batch=200, max_wait=0
            )
        ]

    def _wake_owners(self, meter_ids: set[str]) -> None:
        # One pass over the buses for the whole burst, not one per command.
        for poller, _task in self._pollers.values():
            if not meter_ids.isdisjoint(poller.meter_ids):
                poller.commands_waiting()

    # --- loops ----------------------------------------------------------------------------
    async def background(self) -> Sequence[asyncio.Task[None]]:
        self._sink = ReadingSink(self.store, source=self.instance, shards=self.reading_shards)
        if self.listener is not None:
            await self.listener.start()
        return [
            asyncio.create_task(self._sink.run(), name="collector-reading-sink"),
            asyncio.create_task(self._supervise(), name="collector-dtus"),
            asyncio.create_task(self._follow_read_requests(), name="collector-read-requests"),
            asyncio.create_task(self._follow_commands(), name="collector-commands"),
        ]

    async def _follow_commands(self) -> None:
        """Wake the loops whose meters have commands waiting, whoever accepted them.

        A command accepted here wakes its loop at once; one another replica accepted (or
        one left waiting by a stopped loop) is found here within a second, with one query
        for the whole process instead of one per bus per interval.
        """
        while True:
            await asyncio.sleep(min(1.0, self.poll_interval))
            try:
                waiting = await _whole(records.meters_with_commands(self.store))
            except Exception:
                log.exception("cannot look for waiting commands; retrying")
                continue
            if not waiting:
                continue
            for poller, _task in self._pollers.values():
                if not waiting.isdisjoint(poller.meter_ids):
                    poller.commands_waiting()

    async def _supervise(self) -> None:
        """Keep one bus loop per DTU this replica owns, following registrations and peers."""
        self._supervising = True
        # Renew well inside the lease so a slow turn does not let it lapse.
        cycle = min(self.poll_interval, self.lease_seconds / 3)
        try:
            while True:
                self._dtus_changed.clear()
                try:
                    await _whole(self._follow_registrations())
                except Exception:
                    # A database hiccup must not stop the buses already being polled.
                    log.exception("cannot follow DTU registrations; retrying")
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(cycle):
                        await self._dtus_changed.wait()
        finally:
            self._supervising = False
            pollers, self._pollers = list(self._pollers.values()), {}
            if self.listener is not None:
                await self.listener.stop()
            await _stop_pollers(pollers)
            with contextlib.suppress(Exception):
                await records.give_up_lease(self.store, instance=self.instance)

    async def _follow_registrations(self) -> None:
        self.live_replicas = await records.renew_lease(
            self.store, instance=self.instance, now=utcnow(), lease_seconds=self.lease_seconds
        )
        enabled = await records.enabled_dtus(self.store)
        dialled = [dtu_id for dtu_id, (kind, _rev) in enabled.items() if kind in DIALLED_KINDS]
        wanted = owned_by(self.instance, dialled, self.live_replicas)
        # A DTU that dialled in stays with this replica while its connection lives.
        wanted |= {
            dtu_id
            for dtu_id, (poller, task) in self._pollers.items()
            if dtu_id in enabled
            and enabled[dtu_id][0] == "dtu-client"
            and not task.done()
            and not poller.ending
        }
        for dtu_id in list(self._pollers):
            if dtu_id not in wanted or self._pollers[dtu_id][1].done():
                await _stop_pollers([self._pollers.pop(dtu_id)])
        for dtu_id, (_kind, revision) in enabled.items():
            # Changed on any replica: the loop re-reads its settings before its next request.
            known = self._revisions.get(dtu_id)
            if known is not None and known != revision and dtu_id in self._pollers:
                self._pollers[dtu_id][0].reload()
            self._revisions[dtu_id] = revision
        for dtu_id in sorted(wanted - set(self._pollers)):
            self._start_poller(dtu_id)
        await self._expire_forgotten_commands()
        online, known, dtus_online = await records.count_online(self.store)
        METERS_ONLINE.set(online)
        METERS_KNOWN.set(known)
        DTUS_ONLINE.set(dtus_online)
        DTUS_KNOWN.set(len(enabled))

    async def _expire_forgotten_commands(self) -> None:
        """Answer commands for meters no bus loop serves (a dial-in DTU not connected...).

        A loop serving the meter is woken for its commands within a second
        (_follow_commands), so a command still pending two intervals after its expiry has
        nobody to run it.
        """
        now = utcnow()
        grace = timedelta(seconds=2 * self.poll_interval)
        for command in await records.forgotten_commands(self.store, expired_before=now - grace):
            outcome = records.CommandOutcome(succeeded=False, error=EXPIRED)
            await records.finish_command(self.store, command, outcome, at=now)

    def _start_poller(self, dtu_id: str) -> DtuPoller:
        assert self._sink is not None
        poller = DtuPoller(
            dtu_id,
            store=self.store,
            sink=self._sink,
            profiles=self.profiles,
            opener=self.command_opener,
            poll_interval=self.poll_interval,
            request_timeout=self.request_timeout,
            request_gap=self.request_gap,
            clock_check_interval=self.clock_check_interval,
            meter_timezone=self.meter_timezone,
            settings_loads=self._settings_loads,
        )
        task = asyncio.create_task(poller.run(), name=f"collector-dtu-{dtu_id}")
        self._pollers[dtu_id] = (poller, task)
        log.info("polling DTU", extra={"dtu_id": dtu_id, "instance": self.instance})
        return poller

    async def _hand_over(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        received: bytes,
        dtu_id: str,
    ) -> bool:
        """Give a dial-in connection to its DTU's bus loop, starting one if need be."""
        if not self._supervising:
            return False
        entry = self._pollers.get(dtu_id)
        if entry is not None and not entry[1].done():
            if entry[0].attach(reader, writer, received):
                return True
            entry[0].stop()  # ending with its old connection: a fresh loop takes the new one
        return self._start_poller(dtu_id).attach(reader, writer, received)

    async def _follow_read_requests(self) -> None:
        """Act on read-now requests made through any replica, for the meters we poll."""
        seen = await records.last_read_request_id(self.store)
        while True:
            await asyncio.sleep(min(1.0, self.poll_interval))
            try:
                requests = await _whole(
                    records.read_requests_after(
                        self.store, seen, forget_before=utcnow() - READ_REQUEST_RETENTION
                    )
                )
            except Exception:
                log.exception("cannot read the read requests; retrying")
                continue
            for request_id, meter_id in requests:
                seen = max(seen, request_id)
                if request_id in self._own_read_requests:
                    self._own_read_requests.discard(request_id)
                    continue
                for poller, _task in self._pollers.values():
                    if meter_id is None:
                        poller.read_all_now()
                    elif meter_id in poller.meter_ids:
                        poller.read_now(meter_id, wait=False)

    # --- what the operations ask of the bus loops ---------------------------------------
    def running_poller(self, dtu_id: str) -> DtuPoller | None:
        """Return the live bus loop of a DTU on this replica, or None."""
        entry = self._pollers.get(dtu_id)
        if entry is None or entry[1].done():
            return None
        return entry[0]

    def follow_registration(self, body: DtuRegistration) -> None:
        """Reload the bus loops for a DTU just registered, starting its own if it is ours."""
        for poller, _task in self._pollers.values():
            poller.reload()  # a meter may have moved between DTUs
        owned = body.kind in DIALLED_KINDS and self._owns_dialled(body.id)
        if self._supervising and body.enabled and owned and body.id not in self._pollers:
            self._start_poller(body.id)  # at once, so that a read-now can follow
        self._dtus_changed.set()

    def _owns_dialled(self, dtu_id: str) -> bool:
        replicas = self.live_replicas or [self.instance]
        return dtu_id in owned_by(self.instance, [dtu_id], replicas)

    def polled_dtus(self) -> set[str]:
        """Return the DTUs this replica polls now."""
        return set(self._pollers)

    def read_all_here(self, request_id: int) -> ReadAllQueued:
        """Queue a read of every meter this replica polls, for a read request of its own."""
        self._own_read_requests.add(request_id)
        queued = sum(poller.read_all_now() for poller, _task in self._pollers.values())
        return ReadAllQueued(meters_queued_here=queued, dtus_here=len(self._pollers))

    async def register_dtu(self, body: DtuRegistration) -> tuple[DtuView, bool]:
        """Create or update a DTU and its meters (the API's operation, for in-process callers)."""
        return await self.operations.register_dtu(body=body)

    def routers(self) -> Sequence[APIRouter]:
        imports = ImportOperations(store=self.store, profiles=self.profiles, fleet=self)
        return [api.internal_router(self.operations), imports_router(imports)]


async def _whole(work: Coroutine[Any, Any, T]) -> T:
    """Run database work to its end even if the caller is cancelled meanwhile.

    A transaction cut by a cancel can leave SQLite's write lock on a connection being torn
    down, and the next writer (the lease given up on stop, say) waits out the busy timeout.
    """
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await task
        raise


async def _stop_pollers(pollers: Sequence[tuple[DtuPoller, asyncio.Task[None]]]) -> None:
    """Stop bus loops and wait for them to end."""
    for poller, _task in pollers:
        poller.stop()
    pending = {task for _poller, task in pollers}
    if pending:
        # Let each loop end at its next turn (a request in hand, a write in hand) before
        # cancelling what is left: a transaction cut in half would hold SQLite's lock.
        _done, pending = await asyncio.wait(pending, timeout=STOP_GRACE_SECONDS)
    for task in pending:
        task.cancel()
    while pending:
        _done, pending = await asyncio.wait(pending, timeout=1.0)
        # Python 3.11's wait_for can swallow a cancel: ask again.
        for task in pending:
            task.cancel()
