"""A payments process between the fake providers and the gateway's webhooks, over real HTTP.

The fake providers and the gateway listen on sockets (the providers notify the gateway's
public URL); the gateway reaches payments in process, as the standalone product does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from gateway.bootstrap import build as build_gateway
from gateway.settings import GatewaySettings
from gateway.upstream import Upstreams
from payments.bootstrap import build as build_payments
from payments.settings import PaymentsSettings
from prepaid_common.bus import InProcessBus
from prepaid_common.bus.rabbit import RabbitBus
from prepaid_common.contracts import Envelope
from prepaid_common.db import create_engine
from pydantic import SecretStr
from simulator.payproviders import BackgroundServer, FakeKeys, FakeProviders
from standalone.app import Standalone
from standalone.settings import StandaloneSettings

KEYS = FakeKeys.generate()  # RSA generation is slow: once per test session


@dataclass
class PaymentsRig:
    """Everything a payments test talks to, all over HTTP."""

    fake: FakeProviders
    fake_url: str
    gateway_url: str
    payments: httpx.AsyncClient  # payments' internal API
    public: httpx.AsyncClient  # the gateway's public port, over a socket
    provider: httpx.AsyncClient  # the payer's browser, on the fake providers
    merchant_dir: Path  # the merchant's key files, as payments was configured with them
    credits: list[dict[str, Any]] = field(default_factory=list)

    async def order(self, channel: str, amount: str = "50.00", **extra: Any) -> dict[str, Any]:
        """Start an order for account shop:12; return payments' answer."""
        answer = await self.payments.post(
            "/internal/orders",
            json={
                "account_id": "shop:12",
                "channel": channel,
                "amount": amount,
                "operator": "tenant1",
                **extra,
            },
        )
        assert answer.status_code == 201, answer.text
        return dict(answer.json())

    async def eventually(
        self, check: Callable[[], Awaitable[bool]], *, timeout: float = 10.0
    ) -> None:
        """Wait until ``check`` holds."""
        async with asyncio.timeout(timeout):
            while True:
                if await check():
                    return
                await asyncio.sleep(0.05)

    async def credited(self, count: int) -> list[dict[str, Any]]:
        """Wait for ``count`` payment.succeeded.v1 messages (the outbox relays them after the
        commit), then a moment more: a second credit would have shown by then."""

        async def enough() -> bool:
            return len(self.credits) >= count

        await self.eventually(enough)
        await asyncio.sleep(0.3)
        assert len(self.credits) == count, self.credits
        return self.credits

    async def status(self, out_trade_no: str) -> str:
        """Return an order's status as payments shows it."""
        return str((await self.payments.get(f"/internal/orders/{out_trade_no}")).json()["status"])


@pytest.fixture
async def rig(
    request: pytest.FixtureRequest, backend: tuple[str, str], tmp_path: Path
) -> AsyncIterator[PaymentsRig]:
    # Indirect parameters: {"lifetime": seconds} for orders that expire within the test.
    options: dict[str, Any] = getattr(request, "param", {})
    database_url, _ = backend
    fake = FakeProviders(KEYS)
    fake_server = BackgroundServer()
    gateway_server = BackgroundServer()
    gateway_engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}")
    engine = create_engine(database_url)
    bus = InProcessBus()
    merchant = KEYS.write_merchant_files(tmp_path / "keys")
    settings = PaymentsSettings(
        **merchant,  # type: ignore[arg-type]
        wechatpay_base_url=fake_server.url,
        alipay_gateway_url=f"{fake_server.url}/gateway.do",
        public_base_url=gateway_server.url,
        payments_reconcile_interval_seconds=0.2,
        payments_order_lifetime_seconds=options.get("lifetime", 900),
    )
    payments = build_payments(settings, engine=engine, bus=bus)
    credits: list[dict[str, Any]] = []

    async def count_credit(envelope: Envelope) -> None:
        credits.append(envelope.payload)

    bus.subscribe("test.credits", ["payment.succeeded.v1.#"], count_credit)
    await payments.migrate()
    payments.register()
    await bus.start()
    await payments.start()

    nowhere = httpx.AsyncClient(base_url="http://127.0.0.1:9")
    internal = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=payments.internal_app()),
        base_url="http://payments.local",
        timeout=30,
    )
    upstreams = Upstreams(
        collector=nowhere,
        billing=httpx.AsyncClient(base_url="http://127.0.0.1:9"),
        control=httpx.AsyncClient(base_url="http://127.0.0.1:9"),
        payments=httpx.AsyncClient(
            transport=httpx.ASGITransport(app=payments.internal_app()),
            base_url="http://payments.local",
            timeout=30,
        ),
    )
    gateway = build_gateway(
        GatewaySettings(), engine=gateway_engine, bus=InProcessBus(), upstreams=upstreams
    )
    await gateway.migrate()
    await fake_server.start(fake.app)
    await gateway_server.start(gateway.public_app())
    try:
        async with (
            httpx.AsyncClient(base_url=gateway_server.url, timeout=30) as public,
            httpx.AsyncClient(base_url=fake_server.url, timeout=30) as provider,
        ):
            yield PaymentsRig(
                fake=fake,
                fake_url=fake_server.url,
                gateway_url=gateway_server.url,
                payments=internal,
                public=public,
                provider=provider,
                merchant_dir=tmp_path / "keys",
                credits=credits,
            )
    finally:
        await gateway_server.stop()
        await fake_server.stop()
        await fake.aclose()
        await payments.stop()
        await bus.close()
        await internal.aclose()
        await upstreams.aclose()
        await engine.dispose()
        await gateway_engine.dispose()


@pytest.fixture
def is_postgres(backend: tuple[str, str]) -> bool:
    return backend[0].startswith("postgresql")


ADMIN_PASSWORD = "payments-admin-password"


@contextlib.asynccontextmanager
async def product_on_a_socket(
    backend: tuple[str, str], bus_prefix: str, tmp_path: Path, **overrides: Any
) -> AsyncIterator[tuple[Standalone, str]]:
    """The standalone product with its fake providers, its public API on a real socket (the
    providers notify that address); yields it and its URL."""
    database_url, amqp_url = backend
    public = BackgroundServer()
    settings = StandaloneSettings(
        **{
            "data_dir": tmp_path / "data",
            "database_url": database_url,
            "amqp_url": amqp_url,
            "bus_prefix": bus_prefix,
            "sim_dtus": 1,
            "sim_meters": 4,
            "sim_base_port": 0,
            "sim_speed": 900,
            "poll_interval_seconds": 0.5,
            "collector_listen_port": 0,
            "http_port": public.port,
            "token_secret": SecretStr("payments-standalone-secret-0123456789"),
            "admin_password": SecretStr(ADMIN_PASSWORD),
            **overrides,
        }
    )
    running = Standalone(settings)
    await running.start()
    await public.start(running.app)
    try:
        yield running, public.url
    finally:
        await public.stop()
        await running.stop()
        if isinstance(running.bus, RabbitBus):
            await running.bus.delete_topology()


@contextlib.asynccontextmanager
async def signed_in(url: str) -> AsyncIterator[httpx.AsyncClient]:
    """An admin's client on a product's public API."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as api:
        token = await api.post(
            "/api/v1/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD}
        )
        api.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        yield api
