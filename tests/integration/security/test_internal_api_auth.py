"""A service run alone (cluster mode) refuses internal calls without the service credential.

Over real HTTP: the service is started by ``run_alone`` on a free port, as ``python -m``
starts it, and a top-up without the credential credits nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from gateway.bootstrap import http_upstreams
from gateway.settings import GatewaySettings
from payments.settings import PaymentsSettings
from payments.tables import payments
from prepaid_common.db import create_engine
from prepaid_common.service import SERVICE_CREDENTIAL_HEADER
from pydantic import SecretStr
from sqlalchemy import func, select

CREDENTIAL = "c" * 40
ROOT = Path(__file__).resolve().parents[3]
SOURCES = ["libs", "services/payments"]
TOP_UP = {"account_id": "A-1", "amount": "999.00", "receipt": "R-1", "operator": "nobody"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
async def payments_alone(tmp_path: Path) -> AsyncIterator[tuple[str, PaymentsSettings]]:
    """Run ``python -m payments`` in production on a free loopback port; yield its URL."""
    port = _free_port()
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'payments.db'}"
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(str(ROOT / source) for source in SOURCES),
        "PREPAID_ENVIRONMENT": "production",
        "PREPAID_TOKEN_SECRET": "t" * 40,
        "PREPAID_SERVICE_CREDENTIAL": CREDENTIAL,
        "PREPAID_DATABASE_URL": database_url,
        "PREPAID_AMQP_URL": "",
        "PREPAID_SERVICE_PORT": str(port),
        "PREPAID_LOG_FORMAT": "text",
    }
    with (tmp_path / "payments.log").open("wb") as log_file:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "payments", env=environment, stdout=log_file, stderr=log_file
        )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url) as client:
            for _ in range(300):
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/healthz")).status_code == 200:
                        break
                await asyncio.sleep(0.05)
            else:
                pytest.fail((tmp_path / "payments.log").read_text())
        yield url, PaymentsSettings(database_url=database_url)
    finally:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()


async def _payment_count(settings: PaymentsSettings) -> int:
    engine = create_engine(settings.database_url)
    try:
        async with engine.connect() as connection:
            return int(await connection.scalar(select(func.count()).select_from(payments)) or 0)
    finally:
        await engine.dispose()


async def test_a_top_up_without_the_credential_is_refused_and_writes_nothing(
    payments_alone: tuple[str, PaymentsSettings],
) -> None:
    url, settings = payments_alone
    async with httpx.AsyncClient(base_url=url) as client:
        anonymous = await client.post("/internal/top-ups", json=TOP_UP)
        wrong = await client.post(
            "/internal/top-ups", json=TOP_UP, headers={SERVICE_CREDENTIAL_HEADER: "c" * 39 + "d"}
        )
        assert (anonymous.status_code, wrong.status_code) == (401, 401), anonymous.text
        assert anonymous.json()["code"] == "unauthorized"
        assert await _payment_count(settings) == 0
        # Probes and Prometheus stay open; the credential opens the rest.
        assert (await client.get("/readyz")).status_code == 200
        assert (await client.get("/metrics")).status_code == 200
        allowed = await client.post(
            "/internal/top-ups", json=TOP_UP, headers={SERVICE_CREDENTIAL_HEADER: CREDENTIAL}
        )
        assert allowed.status_code == 201, allowed.text
    assert await _payment_count(settings) == 1


async def test_the_gateway_sends_the_credential_the_services_derive() -> None:
    settings = GatewaySettings(environment="production", token_secret=SecretStr("t" * 40))
    upstreams = http_upstreams(settings)
    try:
        sent = upstreams.billing.client.headers[SERVICE_CREDENTIAL_HEADER]
        assert (
            sent
            == PaymentsSettings(
                environment="production", token_secret=SecretStr("t" * 40)
            ).effective_service_credential()
        )
        assert len(sent) >= 32
    finally:
        await upstreams.aclose()
