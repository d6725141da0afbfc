"""During an outage the API answers 503 with ``Retry-After``, never 500.

Reproductions of issue 10: the gateway's user lookup while its PostgreSQL was down gave 500
(48 times in one run); an upstream answering a plain-text error made the gateway fail to
parse it (500). The database here is a private server the test stops.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from gateway.bootstrap import build
from gateway.service import GatewayService
from gateway.settings import GatewaySettings
from gateway.upstream import Upstreams
from prepaid_common.bus import InProcessBus
from prepaid_common.db import create_engine
from pydantic import SecretStr

from .conftest import PrivatePostgres

ADMIN_PASSWORD = "resilience-admin-password"


def plain_text_upstream(request: httpx.Request) -> httpx.Response:
    """A service behind the gateway whose server (or proxy) answers in plain text."""
    if request.url.path.startswith("/internal/meters"):
        return httpx.Response(500, text="Internal Server Error")
    return httpx.Response(503, text="upstream connect error or disconnect/reset")


def upstreams() -> Upstreams:
    def client(name: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.MockTransport(plain_text_upstream), base_url=f"http://{name}.local"
        )

    return Upstreams(
        collector=client("collector"),
        billing=client("billing"),
        control=client("control"),
        payments=client("payments"),
    )


@pytest.fixture
async def gateway(private_database: str) -> AsyncIterator[GatewayService]:
    engine = create_engine(private_database)
    settings = GatewaySettings(
        token_secret=SecretStr("resilience-secret-0123456789-0123456789"),
        admin_password=SecretStr(ADMIN_PASSWORD),
    )
    service = build(settings, engine=engine, bus=InProcessBus(), upstreams=upstreams())
    await service.migrate()
    await service.ensure_admin()
    try:
        yield service
    finally:
        await service.upstreams.aclose()
        await engine.dispose()


@pytest.fixture
async def admin_client(gateway: GatewayService) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=gateway.public_app()), base_url="http://test"
    ) as client:
        response = await client.post(
            "/api/v1/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD}
        )
        assert response.status_code == 200, response.text
        client.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
        yield client


async def test_the_gateway_answers_503_with_retry_after_while_its_database_is_down(
    admin_client: httpx.AsyncClient, private_postgres: PrivatePostgres
) -> None:
    private_postgres.stop()
    for _ in range(3):  # the user lookup of a signed-in call, and a sign-in
        response = await admin_client.get("/api/v1/audit")
        assert response.status_code == 503, response.text
        assert response.json()["code"] == "unavailable"
        assert int(response.headers["Retry-After"]) > 0
    response = await admin_client.post(
        "/api/v1/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD}
    )
    assert response.status_code == 503, response.text
    assert "Retry-After" in response.headers

    private_postgres.start()
    response = await admin_client.get("/api/v1/audit")
    assert response.status_code == 200, response.text


async def test_a_plain_text_upstream_error_is_mapped_by_its_status_not_a_500(
    admin_client: httpx.AsyncClient,
) -> None:
    failed = await admin_client.get("/api/v1/meters")
    assert failed.status_code == 502, failed.text
    assert failed.json()["code"] == "bad_gateway"
    assert "Internal Server Error" in failed.json()["detail"]

    unavailable = await admin_client.get("/api/v1/accounts/ACC-1")
    assert unavailable.status_code == 503, unavailable.text
    assert unavailable.json()["code"] == "unavailable"
    assert "Retry-After" in unavailable.headers
