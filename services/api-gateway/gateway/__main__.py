"""Run the gateway alone: ``python -m gateway`` (cluster mode)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import uvicorn
from fastapi import FastAPI
from prepaid_common.bus import make_bus
from prepaid_common.db import create_engine
from prepaid_common.logs import configure_logging

from gateway.service import GatewayService
from gateway.settings import GatewaySettings
from gateway.upstream import Upstreams


async def main() -> None:
    settings = GatewaySettings()
    configure_logging(settings.log_level, settings.log_format)
    engine = create_engine(settings.database_url)
    bus = make_bus(settings.amqp_url, prefix=settings.bus_prefix)

    def client(url: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=url, timeout=settings.upstream_timeout_seconds)

    upstreams = Upstreams(
        collector=client(settings.collector_url),
        billing=client(settings.billing_url),
        control=client(settings.control_url),
        payments=client(settings.payments_url),
    )
    service = GatewayService(engine=engine, bus=bus, upstreams=upstreams, settings=settings)
    await service.migrate()
    generated = await service.ensure_admin()
    if generated:
        print(f"Created user admin with password: {generated}", flush=True)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await bus.start()
        await service.start()
        try:
            yield
        finally:
            await service.stop()
            await bus.close()
            await upstreams.aclose()
            await engine.dispose()

    app = service.public_app()
    app.router.lifespan_context = lifespan
    config = uvicorn.Config(
        app, host="0.0.0.0", port=settings.http_port, log_config=None, access_log=False
    )
    await uvicorn.Server(config).serve()


if __name__ == "__main__":
    asyncio.run(main())
