"""Where the control service is wired: its one factory, for every entry point."""

from __future__ import annotations

import logging
from datetime import timedelta

from prepaid_common.bus import MessageBus
from prepaid_common.sealing import load_key_ring
from sqlalchemy.ext.asyncio import AsyncEngine

from control.domain import CommandSealer, EnvelopeSealer, PlainCommandSealer, Reconciliation
from control.handlers import CommandHandlers
from control.service import ControlService
from control.settings import ControlSettings

log = logging.getLogger(__name__)


def command_sealer(settings: ControlSettings) -> CommandSealer:
    """Return the 3DES/AES sealer on the master key file, or the plain one in development."""
    keys = settings.command_master_keys
    ring = load_key_ring(
        settings.command_master_key_file,
        environment=settings.environment,
        text=None if keys is None else keys.get_secret_value(),
    )
    if ring is not None:
        return EnvelopeSealer(ring)
    log.warning("commands are sealed with the plain (development) envelope")
    return PlainCommandSealer()


def build(settings: ControlSettings, *, engine: AsyncEngine, bus: MessageBus) -> ControlService:
    """Build the control service on an engine and a bus."""
    reconciliation = Reconciliation(
        first_retry=timedelta(seconds=settings.control_relay_first_retry_seconds),
        max_backoff=timedelta(seconds=settings.control_relay_max_backoff_seconds),
        alarm_after=timedelta(seconds=settings.control_relay_alarm_seconds),
        operator_grace=timedelta(seconds=settings.control_operator_grace_seconds),
    )
    return ControlService(
        engine=engine,
        bus=bus,
        handlers=CommandHandlers(command_sealer(settings), reconciliation),
        sweep_interval=settings.control_sweep_seconds,
    )
