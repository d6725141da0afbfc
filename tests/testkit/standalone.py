"""The whole product in this process (standalone wiring) and an admin's API client on it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from prepaid_common.bus.rabbit import RabbitBus
from pydantic import SecretStr
from standalone.app import Standalone
from standalone.settings import StandaloneSettings

ADMIN_PASSWORD = "integration-admin"


@contextlib.asynccontextmanager
async def running_product(
    backend: tuple[str, str],
    bus_prefix: str,
    data_dir: Path,
    *,
    sim_dtus: int,
    sim_meters: int,
    sim_speed: float,
) -> AsyncIterator[Standalone]:
    """Start every service with the simulator on ``backend``; remove its queues after."""
    database_url, amqp_url = backend
    settings = StandaloneSettings(
        data_dir=data_dir,
        database_url=database_url,
        amqp_url=amqp_url,
        bus_prefix=bus_prefix,
        sim_dtus=sim_dtus,
        sim_meters=sim_meters,
        sim_base_port=0,
        sim_speed=sim_speed,
        poll_interval_seconds=0.5,
        collector_listen_port=0,
        token_secret=SecretStr("integration-test-secret-0123456789"),
        admin_password=SecretStr(ADMIN_PASSWORD),
    )
    running = Standalone(settings)
    await running.start()
    try:
        yield running
    finally:
        await running.stop()
        if isinstance(running.bus, RabbitBus):
            await running.bus.delete_topology()


@contextlib.asynccontextmanager
async def admin_client(product: Standalone) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the product's public API, signed in as the admin."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=product.app), base_url="http://test", timeout=30
    ) as client:
        response = await client.post(
            "/api/v1/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD}
        )
        client.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
        yield client
