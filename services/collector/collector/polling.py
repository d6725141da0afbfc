"""One loop per DTU: its RS485 bus carries one request at a time.

Each turn does the most urgent thing first (``domain.choose_work``): relay commands, then
on-demand reads, then the meter whose poll is due. A meter that keeps failing is polled
less and less often so that it cannot stall its bus; outages are logged once, when they
start and when they end. The link is chosen by the DTU's kind: a Modbus TCP gateway, a
serial device server in transparent mode, or a DTU in client mode that dialled us (its
connection is handed over by the listener, and a newer connection replaces an older one).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, tzinfo

from prepaid_common.contracts import RelayAction, utcnow
from prepaid_common.outbox import ServiceStore

from collector import command_io, identity_io, meter_io, records
from collector.domain import (
    EXPIRED,
    CommandOpener,
    DecodedReading,
    Dlt645Profile,
    ImplausibleValue,
    MeterProfile,
    OpenedCommand,
    PollSchedule,
    Profile,
    Purchase,
    RefusedCommand,
    check_capable,
    check_purchase_matches,
    expected_relay,
    next_poll_delay,
    plan_profile_reads,
    purchase_landed,
)
from collector.domain.identity import identity_mismatch
from collector.domain.link import choose_work, link_looks_dead, reconnect_delay
from collector.domain.states import IDENTITY, LINK, LOAD, link_reason
from collector.domain.stream import InboundStream
from collector.links import BusLink, LinkDown, MeterGarbled, MeterRefused, MeterSilent, RawLink
from collector.meter_clock import MeterClocks
from collector.metrics import (
    COMMANDS,
    COMMANDS_REFUSED,
    POLL_LATENESS,
    READ_SECONDS,
    READS,
)
from collector.modbus import ModbusLink
from collector.reading_sink import ReadingSink
from collector.records import BusConfig, CommandOutcome, MeterConfig, PendingCommand

log = logging.getLogger(__name__)

DTU_OFFLINE = "DTU offline"
_READS_OK = READS.labels("ok")  # looked up once: it counts every poll


@dataclass(frozen=True)
class _CommandTiming:
    """When a command was wanted, taken to the bus and done there (monotonic seconds)."""

    wanted_since: float
    began: float
    executed: float


class ReadFailed(Exception):
    """An on-demand read that did not produce a reading."""


class DtuPoller:
    """Owns one DTU's connection and decides what its bus does next."""

    def __init__(
        self,
        dtu_id: str,
        *,
        store: ServiceStore,
        sink: ReadingSink,
        profiles: Mapping[str, Profile],
        opener: CommandOpener,
        poll_interval: float,
        request_timeout: float,
        request_gap: float = 0.0,
        clock_check_interval: float = 3600.0,
        meter_timezone: tzinfo | None = None,
        settings_loads: asyncio.Semaphore | None = None,
    ) -> None:
        self.dtu_id = dtu_id
        # Shared by the service's loops: how many may read their settings at once.
        self._settings_loads = settings_loads or asyncio.Semaphore(1)
        self.meter_ids: frozenset[str] = frozenset()
        self._store = store
        self._sink = sink
        self._last_ticket = 0  # this bus's latest queued outcome
        self._profiles = profiles
        self._plans = {
            name: tuple(plan_profile_reads(p))
            for name, p in profiles.items()
            if isinstance(p, MeterProfile)
        }
        self._opener = opener
        # The zone a time set's UTC instant is written to a meter's clock in.
        self._command_zone = meter_timezone
        self._poll_interval = poll_interval
        self._request_timeout = request_timeout
        self._request_gap = request_gap
        self.clocks = MeterClocks(
            store, timezone=meter_timezone, check_interval=clock_check_interval
        )
        self._wake = asyncio.Event()
        self._schedule = PollSchedule(poll_interval)
        self._on_demand: deque[tuple[str, asyncio.Future[None] | None]] = deque()
        self._config: BusConfig | None = None
        self._meters: dict[str, MeterConfig] = {}
        self._link: BusLink | None = None
        self._offered: tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes] | None = None
        self._reload_wanted = True
        self._commands_wanted = True
        # When the loop was first told of the commands it has not yet looked for (monotonic):
        # how long a command waited for its bus is logged with each one carried out.
        self._commands_wanted_since: float | None = None
        self._connect_failures = 0
        self._next_connect_at = -float("inf")
        self._dtu_outage = False
        self._seen_up = False  # the DTU's reachability is recorded once per connection
        self._silent_in_a_row = 0  # requests with no byte in reply, across meters
        self._silent_meters: set[str] = set()  # the meters of that streak
        # Meters that may have a link or identity state kept (cleared when they answer).
        self._stated: set[str] = set()
        # Meters whose identity was read since the link (re)opened, since they last failed,
        # or since their place changed; identities learned on first contact, until reload.
        self._identity_checked: set[str] = set()
        self._identities: dict[str, str] = {}
        # Meters that may have a load alarm kept (cleared when a reading shows none).
        self._load_alarmed: set[str] = set()
        self._meter_outages: set[str] = set()
        self._stopping = False
        # A dial-in DTU's loop ends with its connection: the next one may reach another replica.
        self.ending = False

    # --- what the service asks of the loop ----------------------------------------------
    def reload(self) -> None:
        """Re-read the DTU's settings and meters before the next request."""
        self._reload_wanted = True
        self._wake.set()

    def commands_waiting(self) -> None:
        """Look for pending commands before the next poll."""
        if not self._commands_wanted or self._commands_wanted_since is None:
            self._commands_wanted_since = time.monotonic()
        self._commands_wanted = True
        self._wake.set()

    def read_now(self, meter_id: str, *, wait: bool = True) -> asyncio.Future[None] | None:
        """Queue a read ahead of the poll cycle; the future fails with ReadFailed."""
        future: asyncio.Future[None] | None = None
        if wait:
            future = asyncio.get_running_loop().create_future()
        if not any(queued == meter_id for queued, _f in self._on_demand) or wait:
            self._on_demand.append((meter_id, future))
        if meter_id not in self.meter_ids:
            self._reload_wanted = True
        self._wake.set()
        return future

    def read_all_now(self) -> int:
        """Queue a read of every meter on the bus ahead of the poll cycle; return how many."""
        for meter_id in sorted(self.meter_ids):
            self.read_now(meter_id, wait=False)
        return len(self.meter_ids)

    def attach(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, received: bytes
    ) -> bool:
        """Take a connection the DTU opened to us; False if this loop is ending."""
        if self.ending or self._stopping:
            return False
        if isinstance(self._link, RawLink):
            self._link.adopt(reader, writer, received)
            self._next_connect_at = -float("inf")
        else:
            if self._offered is not None:
                self._offered[1].close()
            self._offered = (reader, writer, received)
        self._wake.set()
        return True

    @property
    def link_up(self) -> bool:
        """Whether the DTU's connection is open now."""
        return self._link is not None and self._link.connected

    def stop(self) -> None:
        """End the loop at its next turn, whatever it is waiting for now."""
        self._stopping = True
        self._wake.set()

    # --- the loop -------------------------------------------------------------------------
    async def run(self) -> None:
        """Serve the bus until the DTU is removed or disabled, or the loop is stopped."""
        try:
            while not self._stopping and await self._guarded_turn():
                pass
        finally:
            self.ending = True
            self._sink.forget(self.dtu_id, self.meter_ids)
            if self._link is not None:
                self._link.close()
            if self._offered is not None:
                self._offered[1].close()
            self._fail_on_demand("the collector is stopping")

    async def _guarded_turn(self) -> bool:
        try:
            return await self._turn()
        except asyncio.CancelledError:
            raise
        except Exception:
            # A database hiccup must not end the bus: log it and try again shortly.
            log.exception("bus loop turn failed", extra={"dtu_id": self.dtu_id})
            await self._sleep(self._poll_interval)
            return True

    async def _turn(self) -> bool:
        self._wake.clear()
        # Settings change rarely: the service tells the loop when (reload), so a turn costs
        # no database round trip.
        if self._reload_wanted and not await self._reload():
            return False
        if not self._link_ready() and not await self._ensure_link():
            assert self._config is not None
            reconnected = self._offered is not None or (
                self._link is not None and self._link.connected
            )
            if self._config.kind == "dtu-client" and self._dtu_outage and not reconnected:
                # Decided with no await before returning, so attach() sees it: the DTU's
                # next connection starts a fresh loop, on whichever replica accepts it.
                self.ending = True
                return False
            await self._run_commands_if_wanted()
            self._fail_on_demand(DTU_OFFLINE)
            await self._sleep(self._next_connect_at - time.monotonic())
            return True
        commands_due = self._commands_wanted
        due, wait = self._schedule.next_due(time.monotonic())
        work = choose_work(
            commands_due=commands_due, on_demand=bool(self._on_demand), poll_due=due is not None
        )
        if work == "commands":
            await self._run_commands_if_wanted()
        elif work == "on_demand":
            meter_id, future = self._on_demand.popleft()
            await self._poll(meter_id, future)
        elif work == "poll":
            assert due is not None
            POLL_LATENESS.observe(self._schedule.lateness(due, time.monotonic()))
            await self._poll(due)
        else:
            await self._sleep(min(wait, self._link_deadline()))
        return True

    async def _sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        # asyncio.timeout, not wait_for: on 3.11 wait_for can lose a cancellation.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()

    async def _reload(self) -> bool:
        self._reload_wanted = False
        try:
            async with self._settings_loads:
                config = await records.load_bus(self._store, self.dtu_id)
        except BaseException:
            # A database hiccup (thousands of loops starting at once can exhaust the pool):
            # the next turn tries again; a loop without its settings cannot poll.
            self._reload_wanted = True
            raise
        if config is None or not config.enabled:
            log.info("DTU no longer polled", extra={"dtu_id": self.dtu_id})
            return False
        if self._link is not None and (
            self._config is None or _link_settings(self._config) != _link_settings(config)
        ):
            self._link.close()
            self._link = None
            self._next_connect_at = -float("inf")
        if self._config is None:  # starting: another replica may have polled the DTU
            self._sink.forget(self.dtu_id, (meter.id for meter in config.meters))
        for meter in config.meters:
            # A meter whose place or profile changed is identified again before it counts.
            if self._meters.get(meter.id) not in (None, meter):
                self._identity_checked.discard(meter.id)
                self._identities.pop(meter.id, None)
        async with self._settings_loads:
            with_states = await records.meters_with_states(
                self._store, (meter.id for meter in config.meters)
            )
        self._stated |= with_states
        self._load_alarmed |= with_states
        self._config = config
        self.meter_ids = frozenset(meter.id for meter in config.meters)
        self._meters = {meter.id: meter for meter in config.meters}
        self._schedule.sync((meter.id for meter in config.meters), time.monotonic())
        return True

    def _make_link(self, config: BusConfig) -> BusLink:
        timeout, gap = self._request_timeout, self._request_gap
        if config.kind == "dtu-client":
            stream = InboundStream(
                registration=(config.registration or "").encode("ascii"),
                mode=config.registration_mode,
                heartbeat=config.heartbeat.encode("ascii"),
            )
            return RawLink(timeout=timeout, gap=gap, stream=stream, on_lost=self._wake.set)
        assert config.host is not None
        assert config.port is not None
        if config.kind == "rtu-over-tcp":
            return RawLink(timeout=timeout, gap=gap, dial=(config.host, config.port))
        return ModbusLink(config.host, config.port, timeout=timeout, gap=gap)

    def _link_ready(self) -> bool:
        """True when the link is up with nothing to do about it (what ``_ensure_link`` would
        find at once): the turn of a busy bus needs no call to it."""
        link = self._link
        return (
            link is not None
            and self._offered is None
            and self._seen_up
            and not self._dtu_outage
            and not self._connect_failures
            and self._config is not None
            and self._config.kind != "dtu-client"
            and link.connected
        )

    def _link_deadline(self) -> float:
        """Seconds until a silent dial-in link counts as dead (infinite for the others)."""
        assert self._config is not None
        if isinstance(self._link, RawLink) and self._config.kind == "dtu-client":
            return self._config.link_timeout_seconds - self._link.silent_for()
        return float("inf")

    async def _ensure_link(self) -> bool:
        assert self._config is not None
        if self._link is None:
            self._link = self._make_link(self._config)
        if self._offered is not None and isinstance(self._link, RawLink):
            reader, writer, received = self._offered
            self._offered = None
            self._link.adopt(reader, writer, received)
        if self._link.connected and self._link_deadline() <= 0:
            silence = self._config.link_timeout_seconds
            assert isinstance(self._link, RawLink)
            self._link.close(f"no heartbeat or reply for {silence:g} s")
        if self._link.connected:
            return await self._link_up()
        if time.monotonic() < self._next_connect_at:
            return False
        try:
            await self._link.connect()
        except LinkDown as error:
            await self._link_lost(str(error))
            return False
        return await self._link_up()

    async def _link_up(self) -> bool:
        if self._dtu_outage or self._connect_failures or not self._seen_up:
            self._connect_failures = 0
            self._seen_up = True
            # A new connection: whoever answers is identified again, and the meters backed
            # off while the DTU was away are asked now (see docs/profiles.md, reconnects).
            self._identity_checked.clear()
            self._schedule.pull_in(time.monotonic())
            if self._dtu_outage:
                self._dtu_outage = False
                log.info("DTU reachable again", extra={"dtu_id": self.dtu_id})
            await records.record_dtu_reachable(self._store, dtu_id=self.dtu_id, at=utcnow())
        return True

    async def _link_lost(self, reason: str) -> None:
        self._connect_failures += 1
        self._seen_up = False
        delay = reconnect_delay(self._poll_interval, self._connect_failures)
        self._next_connect_at = time.monotonic() + delay
        if not self._dtu_outage:
            self._dtu_outage = True
            log.warning("DTU unreachable", extra={"dtu_id": self.dtu_id, "error": reason})
        await self._sink.settled(self._last_ticket)  # no queued reading may undo the news
        now = utcnow()
        await records.record_dtu_lost(
            self._store,
            dtu_id=self.dtu_id,
            reason=reason,
            at=now,
            next_attempt_at=now + timedelta(seconds=delay),
        )
        self._stated |= self.meter_ids
        self._sink.forget(self.dtu_id, self.meter_ids)

    # --- polls ----------------------------------------------------------------------------
    def _meter(self, meter_id: str) -> MeterConfig | None:
        return self._meters.get(meter_id)

    async def _poll(self, meter_id: str, future: asyncio.Future[None] | None = None) -> None:
        meter = self._meter(meter_id)
        if meter is None:
            _settle(future, ReadFailed(f"meter {meter_id} is not on DTU {self.dtu_id}"))
            return
        profile = self._profiles.get(meter.profile)
        started = time.perf_counter()
        try:
            if profile is None:
                raise ImplausibleValue(f"profile {meter.profile!r} is not loaded")
            assert self._link is not None
            if meter.id not in self._identity_checked:
                mismatch = await self._check_identity(meter, profile)
                if mismatch is not None:
                    # Another device answers: its registers are not this meter's to bill.
                    self._schedule.polled(meter.id, time.monotonic(), 0)
                    _settle(future, ReadFailed(mismatch))
                    return
            plan = self._plans.get(meter.profile, ())
            reading = await meter_io.read_meter(self._link, meter, profile, plan)
        except LinkDown as error:
            # The DTU's connection broke, not the meter: reconnect on the next turn.
            READS.labels("link_down").inc()
            self._drop_link(str(error))
            _settle(future, ReadFailed(f"{DTU_OFFLINE}: {error}"))
            return
        except (MeterSilent, MeterRefused, ImplausibleValue) as error:
            await self._meter_failed(meter, error)
            _settle(future, ReadFailed(str(error)))
            return
        if len(self._silent_meters) > 1:
            # The bus answers again after several meters were silent (a frozen gateway
            # resumed): those backed off meanwhile are asked now, not when their wait ends.
            self._schedule.pull_in(time.monotonic())
        self._silent_in_a_row = 0
        self._silent_meters.clear()
        READ_SECONDS.observe(time.perf_counter() - started)
        _READS_OK.inc()
        self._last_ticket = await self._sink.reading(
            dtu_id=self.dtu_id, meter_id=meter.id, reading=reading, at=utcnow()
        )
        self._schedule.polled(meter.id, time.monotonic(), 0)
        if meter.id in self._meter_outages:
            self._meter_outages.discard(meter.id)
            log.info("meter answers again", extra={"dtu_id": self.dtu_id, "meter_id": meter.id})
        if meter.id in self._stated:
            self._stated.discard(meter.id)
            await records.clear_meter_state(self._store, meter.id, kinds=[LINK])
        if future is not None:
            # Whoever asked reads the meter's view next: it must show this reading.
            await self._sink.settled(self._last_ticket)
        _settle(future, None)
        if reading.load_alarm is not None or meter.id in self._load_alarmed:
            await self._watch_load(meter, reading)
        if meter_io.has_clock(profile) and self.clocks.due(meter.id):
            await self._keep_clock(meter, profile)

    async def _watch_load(self, meter: MeterConfig, reading: DecodedReading) -> None:
        """Keep the meter's own load alarm as a state; operators hear of it once an episode.

        The meter raised it when it opened its relay for a power above its limit or for a
        malicious load; it stands (and each poll counts it) until a close clears it.
        """
        alarm = reading.load_alarm
        if alarm is None:
            if meter.id in self._load_alarmed:
                self._load_alarmed.discard(meter.id)
                await records.clear_meter_state(self._store, meter.id, kinds=[LOAD])
            return
        self._load_alarmed.add(meter.id)
        why = (
            "a malicious load (resistive load signature)"
            if alarm == "malicious_load"
            else f"power above its limit of {reading.power_limit_kw} kW"
        )
        detail = f"meter {meter.id} opened its relay itself for {why}"
        if await records.set_meter_state(
            self._store,
            meter_id=meter.id,
            kind=LOAD,
            reason=alarm,
            detail=detail,
            at=utcnow(),
            anomaly=True,
        ):
            log.warning(
                "a meter tripped itself on its load alarm",
                extra={"dtu_id": self.dtu_id, "meter_id": meter.id, "alarm": alarm},
            )

    async def _meter_failed(self, meter: MeterConfig, error: Exception) -> None:
        if isinstance(error, MeterGarbled):
            result = "garbled"
        elif isinstance(error, MeterSilent):
            result = "no_reply"
        elif isinstance(error, MeterRefused):
            result = "exception"
        else:
            result = "implausible"
        READS.labels(result).inc()
        reason = f"{result.replace('_', ' ')}: {error}"
        self._suspect_silence(result == "no_reply")
        if result == "no_reply":
            self._silent_meters.add(meter.id)
        # A meter that stopped answering may come back as another device (a swap).
        self._identity_checked.discard(meter.id)
        now = utcnow()
        link = await self._sink.failure(
            dtu_id=self.dtu_id, meter_id=meter.id, reason=reason, at=now
        )
        failures = link.consecutive_failures if link is not None else 1
        self._schedule.polled(meter.id, time.monotonic(), failures)
        if link is not None:
            # Why, since when, and the earliest next poll: what the API shows of the meter.
            delay = next_poll_delay(self._poll_interval, failures)
            await records.set_meter_state(
                self._store,
                meter_id=meter.id,
                kind=LINK,
                reason=link_reason(result, str(error)),
                detail=reason,
                at=now,
                until=now + timedelta(seconds=delay),
            )
            self._stated.add(meter.id)
        if meter.id not in self._meter_outages:
            self._meter_outages.add(meter.id)
            log.warning(
                "meter read failed; backing off while it keeps failing",
                extra={"dtu_id": self.dtu_id, "meter_id": meter.id, "error": reason},
            )

    async def _check_identity(self, meter: MeterConfig, profile: Profile) -> str | None:
        """Read who answers at the meter's address; return why it is not the meter, or None.

        The first identity read is kept as the meter's; a different one later is a device
        swapped in or re-addressed: a state and an anomaly (once per episode), no reading.
        """
        assert self._link is not None
        found = await identity_io.read_identity(self._link, meter, profile)
        expected = meter.identity or self._identities.get(meter.id)
        if identity_mismatch(expected, found):
            detail = (
                f"meter {meter.id} is registered with identity {expected}; the device at "
                f"DTU {self.dtu_id} address {meter.address} answers {found}"
            )
            if await records.set_meter_state(
                self._store,
                meter_id=meter.id,
                kind=IDENTITY,
                reason="identity_mismatch",
                detail=detail,
                at=utcnow(),
                anomaly=True,
            ):
                log.warning(
                    "another device answers at a meter's address; its readings are not used",
                    extra={"dtu_id": self.dtu_id, "meter_id": meter.id, "found": found},
                )
            self._stated.add(meter.id)
            return f"identity mismatch: {detail}"
        if found is not None and expected is None:
            await records.learn_identity(self._store, meter.id, found)
            self._identities[meter.id] = found
        if meter.id in self._stated:
            await records.clear_meter_state(self._store, meter.id, kinds=[IDENTITY])
        self._identity_checked.add(meter.id)
        return None

    def _suspect_silence(self, silent: bool) -> None:
        """Reconnect a dialled link that has carried nothing back for a whole round."""
        assert self._config is not None
        self._silent_in_a_row = self._silent_in_a_row + 1 if silent else 0
        if self._config.kind == "dtu-client":
            return  # its own deadline (no heartbeat or reply) decides
        if link_looks_dead(self._silent_in_a_row, len(self._config.meters)):
            self._silent_in_a_row = 0
            log.warning("no meter on the bus answers; reconnecting", extra={"dtu_id": self.dtu_id})
            self._drop_link("no meter answered for a whole round")

    def _fail_on_demand(self, reason: str) -> None:
        while self._on_demand:
            _meter_id, future = self._on_demand.popleft()
            _settle(future, ReadFailed(reason))

    def _drop_link(self, reason: str = "") -> None:
        if isinstance(self._link, RawLink):
            self._link.close(reason or "dropped after an error")
        elif self._link is not None:
            self._link.close()

    # --- clock ----------------------------------------------------------------------------
    async def _keep_clock(self, meter: MeterConfig, profile: Profile | None) -> None:
        """Now and then, check a meter's clock (``meter_clock``)."""
        if profile is None:
            return
        assert self._link is not None
        try:
            await self.clocks.keep(self._link, meter, profile)
        except LinkDown as error:
            self._drop_link(str(error))

    # --- commands -------------------------------------------------------------------------
    async def _run_commands_if_wanted(self) -> bool:
        """Execute pending commands if told there are some (``commands_waiting``)."""
        if not self._commands_wanted:
            return False
        self._commands_wanted = False
        wanted_since, self._commands_wanted_since = self._commands_wanted_since, None
        pending = await records.pending_for(self._store, sorted(self.meter_ids))
        # Each result is recorded while the bus carries out the next command: a burst's
        # last meter on a bus waits for the commands ahead on the wire, not for their
        # transactions too. One record at a time, in order: a meter's trip and close keep
        # their order in what is stored.
        recording: asyncio.Task[None] | None = None
        try:
            for command in pending:
                began = time.monotonic()
                outcome = await self._execute(command)
                executed = time.monotonic()
                COMMANDS.labels(_command_result(outcome)).inc()
                finished_at = utcnow()
                # A reading queued before the command must not overwrite the relay it left:
                # the sink keeps the stored relay for readings taken before now.
                if outcome.relay is not None:
                    self._sink.relay_set(command.meter_id, finished_at)
                if recording is not None:
                    await recording
                timing = _CommandTiming(wanted_since or began, began, executed)
                recording = asyncio.create_task(
                    self._record_command(command, outcome, finished_at, timing)
                )
        finally:
            if recording is not None:
                await recording
        return bool(pending)

    async def _record_command(
        self,
        command: PendingCommand,
        outcome: CommandOutcome,
        finished_at: datetime,
        timing: _CommandTiming,
    ) -> None:
        await records.finish_command(self._store, command, outcome, at=finished_at)
        # Where a command's time goes on the collector: waiting for its bus (the poll in
        # flight, the commands ahead of it), the bus itself (write and read-back), and
        # recording the result (the record ahead of it, the result's transaction).
        log.info(
            "command carried out",
            extra={
                "dtu_id": self.dtu_id,
                "meter_id": command.meter_id,
                "command_id": command.command_id,
                "action": command.action,
                "result": _command_result(outcome),
                "waited_ms": round(1000 * (timing.began - timing.wanted_since), 1),
                "bus_ms": round(1000 * (timing.executed - timing.began), 1),
                "record_ms": round(1000 * (time.monotonic() - timing.executed), 1),
            },
        )

    async def _execute(self, command: PendingCommand) -> CommandOutcome:
        now = utcnow()
        meter = self._meter(command.meter_id)
        profile = self._profiles.get(meter.profile) if meter is not None else None
        if now >= command.expires_at:
            return CommandOutcome(succeeded=False, error=EXPIRED, retryable=False)
        if meter is not None and isinstance(profile, MeterProfile) and profile.secure is not None:
            # The meter verifies the envelope itself: it goes to it unchanged (command_io).
            return await self._at_meter(meter, profile, command, now)
        try:
            opened = self._opener.open(
                command.envelope,
                meter_id=command.meter_id,
                now=now,
                last_counter=command.last_counter,
            )
            if opened.command_id != command.command_id:
                raise RefusedCommand(f"envelope belongs to command {opened.command_id}")
            if opened.action != command.action:
                raise RefusedCommand(f"envelope says {opened.action}, request {command.action}")
            check_purchase_matches(
                opened, amount=command.amount, purchase_count=command.purchase_count
            )
            if meter is None or profile is None:
                raise RefusedCommand(
                    f"meter {command.meter_id} has no usable profile", "unknown_meter"
                )
            check_capable(profile, opened.action)
        except RefusedCommand as refusal:
            log.warning(
                "command refused",
                extra={
                    "dtu_id": self.dtu_id,
                    "meter_id": command.meter_id,
                    "command_id": command.command_id,
                    "reason": refusal.reason,
                    "kind": refusal.kind,
                },
            )
            COMMANDS_REFUSED.labels(refusal.kind).inc()
            if refusal.security:
                await records.record_security_event(
                    self._store,
                    meter_id=command.meter_id,
                    detail=f"command {command.command_id} refused ({refusal.kind}): "
                    f"{refusal.reason}"[:400],
                    at=now,
                )
            return CommandOutcome(succeeded=False, error=refusal.reason, retryable=False)
        outcome = await self._carry_out(meter, profile, opened)
        # The counter is taken whatever the outcome: a retry comes with a counter of its own.
        return replace(outcome, counter=opened.counter)

    async def _carry_out(
        self, meter: MeterConfig, profile: Profile, opened: OpenedCommand
    ) -> CommandOutcome:
        if self._link is None or not self._link.connected:
            return CommandOutcome(succeeded=False, error=DTU_OFFLINE)
        if opened.purchase is not None:
            return await self._push_purchase(meter, profile, opened.purchase)
        if opened.action == "credit":
            return CommandOutcome(succeeded=False, error="credit without a purchase")
        if isinstance(profile, MeterProfile) and opened.action in _REGISTER_COMMANDS:
            return await self._write_registers(meter, profile, opened)
        if opened.action in ("hold_on", "hold_off"):
            return await self._hold_power(meter, profile, on=opened.action == "hold_on")
        action: RelayAction = "trip" if opened.action == "trip" else "close"
        try:
            now = await self.clocks.command_time(self._link, meter, profile)
            relay = await meter_io.switch_relay(self._link, meter, profile, action, now=now)
        except LinkDown as error:
            self._drop_link(str(error))
            return CommandOutcome(succeeded=False, error=f"{DTU_OFFLINE}: {error}")
        except (MeterSilent, MeterRefused, ImplausibleValue) as error:
            return _not_executed(error)
        if relay != expected_relay(action):
            return CommandOutcome(
                succeeded=False, relay=relay, error=f"relay is {relay} after {action}"
            )
        return CommandOutcome(succeeded=True, relay=relay)

    async def _at_meter(
        self, meter: MeterConfig, profile: MeterProfile, command: PendingCommand, now: datetime
    ) -> CommandOutcome:
        if self._link is None or not self._link.connected:
            return CommandOutcome(succeeded=False, error=DTU_OFFLINE)
        try:
            return await command_io.deliver_sealed(
                self._store, self._link, meter, profile, command, at=now
            )
        except LinkDown as error:
            self._drop_link(str(error))
            return CommandOutcome(succeeded=False, error=f"{DTU_OFFLINE}: {error}")

    async def _write_registers(
        self, meter: MeterConfig, profile: MeterProfile, opened: OpenedCommand
    ) -> CommandOutcome:
        assert self._link is not None
        try:
            return await command_io.write_registers(
                self._link, meter, profile, opened, zone=self._command_zone
            )
        except LinkDown as error:
            self._drop_link(str(error))
            return CommandOutcome(succeeded=False, error=f"{DTU_OFFLINE}: {error}")

    async def _hold_power(
        self, meter: MeterConfig, profile: Profile, *, on: bool
    ) -> CommandOutcome:
        assert self._link is not None
        assert isinstance(profile, Dlt645Profile)  # check_capable let no other through
        try:
            now = await self.clocks.command_time(self._link, meter, profile)
            held = await meter_io.set_hold_power(self._link, meter, profile, on, now=now)
        except LinkDown as error:
            self._drop_link(str(error))
            return CommandOutcome(succeeded=False, error=f"{DTU_OFFLINE}: {error}")
        except (MeterSilent, MeterRefused, ImplausibleValue) as error:
            return _not_executed(error)
        if held != on:
            state = "on" if held else "off"
            return CommandOutcome(succeeded=False, error=f"hold-power is {state} after the command")
        return CommandOutcome(succeeded=True)

    async def _push_purchase(
        self, meter: MeterConfig, profile: Profile, purchase: Purchase
    ) -> CommandOutcome:
        assert self._link is not None
        try:
            _credit, count = await meter_io.push_purchase(self._link, meter, profile, purchase)
        except LinkDown as error:
            self._drop_link(str(error))
            return CommandOutcome(succeeded=False, error=f"{DTU_OFFLINE}: {error}")
        except meter_io.PurchaseNotDue as not_due:
            # Not written; retryable: billing weighs the meter's credit at its next reading.
            return CommandOutcome(succeeded=False, error=str(not_due))
        except MeterRefused as error:
            # The meter takes only its count + 1 (or its own count again): a refusal is final.
            error_text = f"meter refused purchase {purchase.count}: {error}"
            return CommandOutcome(succeeded=False, error=error_text, retryable=False)
        except RefusedCommand as refusal:
            return CommandOutcome(succeeded=False, error=refusal.reason, retryable=False)
        except (MeterSilent, ImplausibleValue) as error:
            # The write may have landed: pushing the same count again is safe.
            return CommandOutcome(succeeded=False, error=f"meter did not execute: {error}")
        problem = purchase_landed(purchase, count)
        if problem is not None:
            return CommandOutcome(succeeded=False, error=problem)
        return CommandOutcome(succeeded=True)


# Commands a Modbus meter takes in its registers (command_io), beyond relay and purchases.
_REGISTER_COMMANDS = ("hold_on", "hold_off", "time_set", "alarm_thresholds", "power_limit")


def _link_settings(config: BusConfig) -> tuple[object, ...]:
    return (
        config.kind,
        config.host,
        config.port,
        config.registration,
        config.registration_mode,
        config.heartbeat,
    )


def _settle(future: asyncio.Future[None] | None, outcome: Exception | None) -> None:
    if future is None or future.done():
        return
    if outcome is None:
        future.set_result(None)
    else:
        future.set_exception(outcome)


def _not_executed(error: Exception) -> CommandOutcome:
    # A refusal that sending again cannot change (a wrong password) is not retried.
    final = isinstance(error, MeterRefused) and error.final
    return CommandOutcome(
        succeeded=False, error=f"meter did not execute: {error}", retryable=not final
    )


def _command_result(outcome: CommandOutcome) -> str:
    if outcome.succeeded:
        return "succeeded"
    if outcome.error == EXPIRED:
        return "expired"
    return "failed"
