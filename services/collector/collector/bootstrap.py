"""Where the collector is wired: its one factory, for every entry point."""

from __future__ import annotations

import logging
from zoneinfo import ZoneInfo

from prepaid_common.bus import MessageBus
from prepaid_common.sealing import load_key_ring
from sqlalchemy.ext.asyncio import AsyncEngine

from collector.domain import CommandOpener, PlainCommandOpener, SealedCommandOpener
from collector.profiles import load_profiles
from collector.service import CollectorService
from collector.settings import CollectorSettings

log = logging.getLogger(__name__)


def command_opener(settings: CollectorSettings) -> CommandOpener:
    """Return the opener of sealed envelopes on the key file, or the plain one in development."""
    keys = settings.command_master_keys
    ring = load_key_ring(
        settings.command_master_key_file,
        environment=settings.environment,
        text=None if keys is None else keys.get_secret_value(),
    )
    if ring is not None:
        return SealedCommandOpener(ring)
    log.warning("relay commands are opened with the plain (development) opener")
    return PlainCommandOpener()


def build(settings: CollectorSettings, *, engine: AsyncEngine, bus: MessageBus) -> CollectorService:
    """Build the collector from its settings on an engine and a bus."""
    zone = settings.collector_meter_timezone
    return CollectorService(
        engine=engine,
        bus=bus,
        poll_interval=settings.poll_interval_seconds,
        request_timeout=settings.request_timeout_seconds,
        request_gap=settings.collector_request_gap_seconds,
        command_opener=command_opener(settings),
        # The shipped meter profiles, then a site's own (which may replace one).
        profiles=load_profiles(*([settings.profiles_dir] if settings.profiles_dir else [])),
        instance=settings.collector_instance,
        listen_host=settings.collector_listen_host,
        listen_port=settings.collector_listen_port,
        clock_check_interval=settings.collector_clock_check_seconds,
        meter_timezone=ZoneInfo(zone) if zone else None,
        lease_seconds=settings.collector_lease_seconds,
        reading_shards=settings.reading_shards,
    )
