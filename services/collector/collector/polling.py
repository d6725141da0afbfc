"""One loop per DTU: its RS485 bus carries one request at a time.

Each turn does the most urgent thing first: relay commands, then on-demand reads, then
the meter whose poll is due. A meter that keeps failing is polled less and less often so
that it cannot stall its bus; outages are logged once, when they start and when they end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Mapping

from prepaid_common.contracts import utcnow
from prepaid_common.outbox import ServiceStore

from collector import records
from collector.domain import (
    EXPIRED,
    CommandOpener,
    DecodedReading,
    ImplausibleValue,
    MeterProfile,
    PollSchedule,
    ReadBlock,
    RefusedCommand,
    decode_reading,
    decode_relay,
    expected_relay,
    plan_profile_reads,
    registers_from_blocks,
    relay_command_value,
    retry_delay,
)
from collector.metrics import COMMANDS, READ_SECONDS, READS
from collector.modbus import LinkDown, MeterRefused, MeterSilent, ModbusLink
from collector.records import BusConfig, CommandOutcome, MeterConfig, PendingCommand

log = logging.getLogger(__name__)

DTU_OFFLINE = "DTU offline"


class ReadFailed(Exception):
    """An on-demand read that did not produce a reading."""


class DtuPoller:
    """Owns one DTU's connection and decides what its bus does next."""

    def __init__(
        self,
        dtu_id: str,
        *,
        store: ServiceStore,
        profiles: Mapping[str, MeterProfile],
        opener: CommandOpener,
        poll_interval: float,
        request_timeout: float,
    ) -> None:
        self.dtu_id = dtu_id
        self.meter_ids: frozenset[str] = frozenset()
        self._store = store
        self._profiles = profiles
        self._plans = {name: tuple(plan_profile_reads(p)) for name, p in profiles.items()}
        self._opener = opener
        self._poll_interval = poll_interval
        self._request_timeout = request_timeout
        self._wake = asyncio.Event()
        self._schedule = PollSchedule(poll_interval)
        self._on_demand: deque[tuple[str, asyncio.Future[None]]] = deque()
        self._config: BusConfig | None = None
        self._link: ModbusLink | None = None
        self._reload_wanted = True
        self._commands_wanted = True
        self._loaded_at = self._commands_checked_at = -float("inf")
        self._connect_failures = 0
        self._next_connect_at = -float("inf")
        self._dtu_outage = False
        self._meter_outages: set[str] = set()
        self._stopping = False

    # --- what the service asks of the loop ----------------------------------------------
    def reload(self) -> None:
        """Re-read the DTU's settings and meters before the next request."""
        self._reload_wanted = True
        self._wake.set()

    def commands_waiting(self) -> None:
        """Look for pending commands before the next poll."""
        self._commands_wanted = True
        self._wake.set()

    def read_now(self, meter_id: str) -> asyncio.Future[None]:
        """Queue a read ahead of the poll cycle; the future fails with ReadFailed."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._on_demand.append((meter_id, future))
        if meter_id not in self.meter_ids:
            self._reload_wanted = True
        self._wake.set()
        return future

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
            if self._link is not None:
                self._link.close()
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
        now = time.monotonic()
        reload_due = self._reload_wanted or now - self._loaded_at >= self._poll_interval
        if reload_due and not await self._reload():
            return False
        if not await self._ensure_link():
            await self._run_commands_if_wanted()
            self._fail_on_demand(DTU_OFFLINE)
            await self._sleep(self._next_connect_at - time.monotonic())
            return True
        if await self._run_commands_if_wanted():
            return True
        if self._on_demand:
            meter_id, future = self._on_demand.popleft()
            await self._poll(meter_id, future)
            return True
        due, wait = self._schedule.next_due(time.monotonic())
        if due is not None:
            await self._poll(due)
        else:
            await self._sleep(wait)
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
        config = await records.load_bus(self._store, self.dtu_id)
        if config is None or not config.enabled:
            log.info("DTU no longer polled", extra={"dtu_id": self.dtu_id})
            return False
        if self._link is not None and (self._link.host, self._link.port) != (
            config.host,
            config.port,
        ):
            self._link.close()
            self._link = None
            self._next_connect_at = -float("inf")
        self._config = config
        self.meter_ids = frozenset(meter.id for meter in config.meters)
        self._schedule.sync((meter.id for meter in config.meters), time.monotonic())
        self._loaded_at = time.monotonic()
        return True

    async def _ensure_link(self) -> bool:
        assert self._config is not None
        if self._link is not None and self._link.connected:
            return True
        if time.monotonic() < self._next_connect_at:
            return False
        if self._link is None:
            self._link = ModbusLink(
                self._config.host, self._config.port, timeout=self._request_timeout
            )
        try:
            await self._link.connect()
        except LinkDown as error:
            self._connect_failures += 1
            self._next_connect_at = time.monotonic() + retry_delay(
                self._poll_interval, self._connect_failures
            )
            if not self._dtu_outage:
                self._dtu_outage = True
                log.warning("DTU unreachable", extra={"dtu_id": self.dtu_id, "error": str(error)})
            await records.record_dtu_lost(
                self._store, dtu_id=self.dtu_id, reason=str(error), at=utcnow()
            )
            return False
        self._connect_failures = 0
        if self._dtu_outage:
            self._dtu_outage = False
            log.info("DTU reachable again", extra={"dtu_id": self.dtu_id})
        await records.record_dtu_reachable(self._store, dtu_id=self.dtu_id, at=utcnow())
        return True

    # --- polls ----------------------------------------------------------------------------
    def _meter(self, meter_id: str) -> MeterConfig | None:
        assert self._config is not None
        return next((m for m in self._config.meters if m.id == meter_id), None)

    async def _poll(self, meter_id: str, future: asyncio.Future[None] | None = None) -> None:
        meter = self._meter(meter_id)
        if meter is None:
            _settle(future, ReadFailed(f"meter {meter_id} is not on DTU {self.dtu_id}"))
            return
        started = time.perf_counter()
        try:
            reading = await self._read_meter(meter)
        except LinkDown as error:
            # The DTU's connection broke, not the meter: reconnect on the next turn.
            READS.labels("link_down").inc()
            self._drop_link()
            _settle(future, ReadFailed(f"{DTU_OFFLINE}: {error}"))
            return
        except (MeterSilent, MeterRefused, ImplausibleValue) as error:
            await self._meter_failed(meter, error)
            _settle(future, ReadFailed(str(error)))
            return
        READ_SECONDS.observe(time.perf_counter() - started)
        READS.labels("ok").inc()
        await records.record_reading(
            self._store, dtu_id=self.dtu_id, meter_id=meter.id, reading=reading, at=utcnow()
        )
        self._schedule.polled(meter.id, time.monotonic(), 0)
        if meter.id in self._meter_outages:
            self._meter_outages.discard(meter.id)
            log.info("meter answers again", extra={"dtu_id": self.dtu_id, "meter_id": meter.id})
        _settle(future, None)

    async def _read_meter(self, meter: MeterConfig) -> DecodedReading:
        profile = self._profiles.get(meter.profile)
        if profile is None:
            raise ImplausibleValue(f"profile {meter.profile!r} is not loaded")
        assert self._link is not None
        blocks = self._plans[meter.profile]
        results = [
            await self._link.read(meter.unit_id, profile.read_function, block) for block in blocks
        ]
        return decode_reading(profile, registers_from_blocks(blocks, results))

    async def _meter_failed(self, meter: MeterConfig, error: Exception) -> None:
        result = {MeterSilent: "no_reply", MeterRefused: "exception"}.get(
            type(error), "implausible"
        )
        READS.labels(result).inc()
        reason = f"{result.replace('_', ' ')}: {error}"
        link = await records.record_failure(
            self._store, dtu_id=self.dtu_id, meter_id=meter.id, reason=reason, at=utcnow()
        )
        failures = link.consecutive_failures if link is not None else 1
        self._schedule.polled(meter.id, time.monotonic(), failures)
        if meter.id not in self._meter_outages:
            self._meter_outages.add(meter.id)
            log.warning(
                "meter read failed; backing off while it keeps failing",
                extra={"dtu_id": self.dtu_id, "meter_id": meter.id, "error": reason},
            )

    def _fail_on_demand(self, reason: str) -> None:
        while self._on_demand:
            _meter_id, future = self._on_demand.popleft()
            _settle(future, ReadFailed(reason))

    def _drop_link(self) -> None:
        if self._link is not None:
            self._link.close()

    # --- commands -------------------------------------------------------------------------
    async def _run_commands_if_wanted(self) -> bool:
        """Execute pending commands if asked to, or once per interval; True if any ran."""
        now = time.monotonic()
        if not self._commands_wanted and now - self._commands_checked_at < self._poll_interval:
            return False
        self._commands_wanted = False
        self._commands_checked_at = now
        pending = await records.pending_for(self._store, sorted(self.meter_ids))
        for command in pending:
            outcome = await self._execute(command)
            COMMANDS.labels(_command_result(outcome)).inc()
            await records.finish_command(self._store, command, outcome, at=utcnow())
        return bool(pending)

    async def _execute(self, command: PendingCommand) -> CommandOutcome:
        now = utcnow()
        meter = self._meter(command.meter_id)
        profile = self._profiles.get(meter.profile) if meter is not None else None
        if now >= command.expires_at:
            return CommandOutcome(succeeded=False, error=EXPIRED)
        try:
            opened = self._opener.open(command.envelope, meter_id=command.meter_id, now=now)
            if opened.command_id != command.command_id:
                raise RefusedCommand(f"envelope belongs to command {opened.command_id}")
            if opened.action != command.action:
                raise RefusedCommand(f"envelope says {opened.action}, request {command.action}")
            if meter is None or profile is None:
                raise RefusedCommand(f"meter {command.meter_id} has no usable profile")
            register, value = relay_command_value(profile, opened.action)
        except RefusedCommand as refusal:
            log.warning(
                "command refused",
                extra={
                    "dtu_id": self.dtu_id,
                    "meter_id": command.meter_id,
                    "command_id": command.command_id,
                    "reason": refusal.reason,
                },
            )
            return CommandOutcome(succeeded=False, error=refusal.reason)
        if self._link is None or not self._link.connected:
            return CommandOutcome(succeeded=False, error=DTU_OFFLINE)
        assert profile.relay is not None
        try:
            await self._link.write(meter.unit_id, register, value)
            state_register = ReadBlock(profile.relay.state.address, 1)
            words = await self._link.read(meter.unit_id, profile.read_function, state_register)
            relay = decode_relay(profile, words[0])
        except LinkDown as error:
            self._drop_link()
            return CommandOutcome(succeeded=False, error=f"{DTU_OFFLINE}: {error}")
        except (MeterSilent, MeterRefused, ImplausibleValue) as error:
            return CommandOutcome(succeeded=False, error=f"meter did not execute: {error}")
        if relay != expected_relay(opened.action):
            return CommandOutcome(
                succeeded=False, relay=relay, error=f"relay is {relay} after {opened.action}"
            )
        return CommandOutcome(succeeded=True, relay=relay)


def _settle(future: asyncio.Future[None] | None, outcome: Exception | None) -> None:
    if future is None or future.done():
        return
    if outcome is None:
        future.set_result(None)
    else:
        future.set_exception(outcome)


def _command_result(outcome: CommandOutcome) -> str:
    if outcome.succeeded:
        return "succeeded"
    if outcome.error == EXPIRED:
        return "expired"
    return "failed"
