"""Where the collector is wired: its one factory, for every entry point."""

from __future__ import annotations

import logging
from zoneinfo import ZoneInfo

from prepaid_common.bus import MessageBus
from sqlalchemy.ext.asyncio import AsyncEngine

from collector.domain import PlainCommandOpener
from collector.profiles import load_profiles
from collector.service import CollectorService
from collector.settings import CollectorSettings

log = logging.getLogger(__name__)


def build(settings: CollectorSettings, *, engine: AsyncEngine, bus: MessageBus) -> CollectorService:
    """Build the collector from its settings on an engine and a bus."""
    if settings.environment == "production":
        log.warning("relay commands are opened with the plain (unsealed) opener")
    zone = settings.collector_meter_timezone
    return CollectorService(
        engine=engine,
        bus=bus,
        poll_interval=settings.poll_interval_seconds,
        request_timeout=settings.request_timeout_seconds,
        request_gap=settings.collector_request_gap_seconds,
        # Until the 3DES opener lands, the plain one matching control's plain sealer.
        command_opener=PlainCommandOpener(),
        # The shipped meter profiles, then a site's own (which may replace one).
        profiles=load_profiles(*([settings.profiles_dir] if settings.profiles_dir else [])),
        instance=settings.collector_instance,
        listen_host=settings.collector_listen_host,
        listen_port=settings.collector_listen_port,
        clock_check_interval=settings.collector_clock_check_seconds,
        meter_timezone=ZoneInfo(zone) if zone else None,
        lease_seconds=settings.collector_lease_seconds,
    )
