"""A running collector for tests: its bus, what it said, and its internal API."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
from collector.bootstrap import build
from collector.domain import plain_envelope
from collector.service import CollectorService
from collector.settings import CollectorSettings
from prepaid_common.bus import MessageBus, make_bus
from prepaid_common.bus.rabbit import RabbitBus
from prepaid_common.contracts import (
    CommandRequestV1,
    CommandResultV1,
    Envelope,
    ReadingBatchV1,
    ReadingV1,
    RelayAction,
    utcnow,
)
from prepaid_common.db import create_engine

from testkit import wait_until

POLL_INTERVAL = 0.2
REQUEST_TIMEOUT = 0.3


@dataclass
class Collector:
    """A running collector, its bus, what it said, and its internal API."""

    service: CollectorService
    bus: MessageBus
    http: httpx.AsyncClient
    heard: list[Envelope] = field(default_factory=list)

    def messages(self, kind: type[Any], **match: object) -> list[Any]:
        found = [
            kind.model_validate(envelope.payload)
            for envelope in self.heard
            if envelope.type == kind.TYPE
        ]
        return [m for m in found if all(getattr(m, k) == v for k, v in match.items())]

    def readings(self, meter_id: str) -> list[ReadingV1]:
        """The meter's readings in the order published (collectors send them in batches)."""
        return [
            reading
            for batch in self.messages(ReadingBatchV1)
            for reading in batch.readings
            if reading.meter_id == meter_id
        ]

    async def register(self, dtu: dict[str, Any]) -> httpx.Response:
        return await self.http.post("/internal/dtus", json=dtu)

    async def command(self, meter_id: str, action: RelayAction, *, ttl: float = 60) -> str:
        command_id = str(uuid.uuid4())
        expires_at = utcnow() + timedelta(seconds=ttl)
        request = CommandRequestV1(
            command_id=command_id,
            meter_id=meter_id,
            action=action,
            issued_at=utcnow(),
            expires_at=expires_at,
            envelope=plain_envelope(
                meter_id=meter_id, action=action, command_id=command_id, expires_at=expires_at
            ),
        )
        await self.bus.publish(Envelope.wrap(request, producer="control"))
        return command_id

    async def result_of(self, command_id: str) -> CommandResultV1:
        async def probe() -> CommandResultV1 | None:
            found = self.messages(CommandResultV1, command_id=command_id)
            return found[0] if found else None

        return await wait_until(probe)


@asynccontextmanager
async def running_collector(
    database_url: str,
    amqp_url: str = "",
    prefix: str = "prepaid",
    *,
    before_start: Callable[[Collector], Any] | None = None,
    **options: Any,
) -> AsyncIterator[Collector]:
    """Start a collector built as every entry point builds it; ``options`` are its settings.

    Tests poll fast, give up on a request soon, and run no listener unless they ask for one
    (``collector_listen_port=0``: any free port).
    """
    engine = create_engine(database_url)
    bus = make_bus(amqp_url, prefix=prefix)
    settings = CollectorSettings(
        **{
            "poll_interval_seconds": POLL_INTERVAL,
            "request_timeout_seconds": REQUEST_TIMEOUT,
            "collector_listen_port": None,
            **options,
        }
    )
    service = build(settings, engine=engine, bus=bus)
    await service.migrate()
    service.register()
    transport = httpx.ASGITransport(app=service.internal_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://collector") as http:
        collector = Collector(service=service, bus=bus, http=http)

        async def hear(envelope: Envelope) -> None:
            collector.heard.append(envelope)

        bus.subscribe("test-listener", ["#"], hear)
        try:
            await bus.start()
            if before_start is not None:
                await before_start(collector)
            await service.start()
            yield collector
        finally:
            await service.stop()
            await bus.close()
            if isinstance(bus, RabbitBus):
                await bus.delete_topology()
            await engine.dispose()


def holds(predicate: Callable[[], object]) -> Callable[[], Awaitable[object]]:
    """Turn a plain check into the async probe ``wait_until`` polls."""

    async def probe() -> object:
        return predicate()

    return probe
