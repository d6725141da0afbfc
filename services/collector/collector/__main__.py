"""Run the collector alone: ``python -m collector`` (cluster mode, port 8101)."""

import asyncio
import logging
from zoneinfo import ZoneInfo

from prepaid_common.bus import MessageBus
from prepaid_common.service import run_alone
from sqlalchemy.ext.asyncio import AsyncEngine

from collector.profiles import load_profiles
from collector.service import CollectorService
from collector.settings import CollectorSettings


def main() -> None:
    settings = CollectorSettings()
    profiles = load_profiles(*([settings.profiles_dir] if settings.profiles_dir else []))
    zone = (
        ZoneInfo(settings.collector_meter_timezone) if settings.collector_meter_timezone else None
    )

    class ConfiguredCollector(CollectorService):
        def __init__(self, *, engine: AsyncEngine, bus: MessageBus) -> None:
            super().__init__(
                engine=engine,
                bus=bus,
                poll_interval=settings.poll_interval_seconds,
                request_timeout=settings.request_timeout_seconds,
                request_gap=settings.collector_request_gap_seconds,
                profiles=profiles,
                instance=settings.collector_instance,
                listen_host=settings.collector_listen_host,
                listen_port=settings.collector_listen_port,
                clock_check_interval=settings.collector_clock_check_seconds,
                meter_timezone=zone,
                lease_seconds=settings.collector_lease_seconds,
            )

    if settings.environment == "production":
        logging.getLogger(__name__).warning(
            "relay commands are opened with the plain (unsealed) opener"
        )
    asyncio.run(run_alone(ConfiguredCollector, port=settings.service_port, settings=settings))


if __name__ == "__main__":
    main()
