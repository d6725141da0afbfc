"""The gateway alone on SQLite, the services behind it answered by a test's handler."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
from gateway.bootstrap import build
from gateway.service import GatewayService
from gateway.settings import GatewaySettings
from gateway.upstream import Upstreams
from prepaid_common.bus.memory import InProcessBus
from prepaid_common.db import create_engine
from pydantic import SecretStr

ADMIN_PASSWORD = "a quiet orange lamp"
Answer = Callable[[httpx.Request], httpx.Response]


def not_found(request: httpx.Request) -> httpx.Response:
    """Answer every forwarded call with a service's 404."""
    return httpx.Response(404, json={"detail": "nothing here", "code": "not_found"})


@contextlib.asynccontextmanager
async def gateway_on(
    tmp_path: Path, answer: Answer = not_found, **settings: Any
) -> AsyncIterator[GatewayService]:
    """Run the gateway (migrated, with its admin) with ``answer`` playing the services."""

    def client(name: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.MockTransport(answer), base_url=f"http://{name}.local"
        )

    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}")
    configured = GatewaySettings(
        token_secret=SecretStr("gateway-test-secret-0123456789-0123456789"),
        admin_password=SecretStr(ADMIN_PASSWORD),
        **settings,
    )
    upstreams = Upstreams(
        collector=client("collector"),
        billing=client("billing"),
        control=client("control"),
        payments=client("payments"),
    )
    service = build(configured, engine=engine, bus=InProcessBus(), upstreams=upstreams)
    await service.migrate()
    await service.ensure_admin()
    try:
        yield service
    finally:
        await upstreams.aclose()
        await engine.dispose()


def public_client(
    service: GatewayService, *, address: str = "127.0.0.1", app: object = None
) -> httpx.AsyncClient:
    """A client on the gateway's public app, calling from ``address``."""
    transport = httpx.ASGITransport(app=app or service.public_app(), client=(address, 40000))  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def sign_in(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    """Sign the client in (its Authorization header set); return the login's answer."""
    response = await client.post(
        "/api/v1/auth/token", data={"username": username, "password": password}
    )
    if response.status_code == 200:
        client.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
    return response
