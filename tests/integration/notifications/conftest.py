"""A notifications process between the bus and the fake providers, over real sockets.

The fake SMS, WeChat and SMTP providers listen on loopback ports and check every request's
signature or credentials with their own keys; the service is configured for them exactly as
for the real ones (only the addresses differ). Messages arrive by the bus (in-process with
SQLite, RabbitMQ with PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from notifications.bootstrap import build
from notifications.service import NotificationsService
from notifications.settings import NotificationsSettings
from prepaid_common.bus import MessageBus, make_bus
from prepaid_common.contracts import Envelope, Message
from prepaid_common.db import create_engine
from simulator.notifyproviders import FakeNotifyProviders, FakeSmtpServer, NotifyKeys
from simulator.payproviders import BackgroundServer

TENANT_PHONE = "+8613800000001"
TENANT_EMAIL = "tenant@example.com"
TENANT_OPENID = "oTenant_0001"
OPERATOR_PHONE = "+8613900000009"
OPERATOR_EMAIL = "ops@example.com"
OPERATOR_OPENID = "oOperator_0009"


@dataclass
class Rig:
    service: NotificationsService
    bus: MessageBus
    fake: FakeNotifyProviders
    smtp: FakeSmtpServer
    fakes: httpx.AsyncClient  # the fakes' own HTTP API (what they received)
    api: httpx.AsyncClient  # notifications' internal API
    keys: NotifyKeys

    async def publish(self, message: Message) -> None:
        await self.bus.publish(Envelope.wrap(message, producer="test"))

    async def eventually(self, check: Callable[[], Awaitable[bool]], timeout: float = 15) -> None:
        async with asyncio.timeout(timeout):
            while True:
                if await check():
                    return
                await asyncio.sleep(0.05)

    async def received(self, provider: str, count: int = 1) -> list[dict[str, Any]]:
        """Wait until the fake ``provider`` has received ``count`` requests; return them."""
        got: list[dict[str, Any]] = []

        async def enough() -> bool:
            nonlocal got
            got = (await self.fakes.get("/received", params={"provider": provider})).json()
            return len(got) >= count

        await self.eventually(enough)
        return got

    async def messages(self, **filters: str) -> list[dict[str, Any]]:
        answer = await self.api.get("/internal/notifications", params=filters)
        assert answer.status_code == 200, answer.text
        return list(answer.json()["items"])

    async def settled(self, count: int, **filters: str) -> list[dict[str, Any]]:
        """Wait until ``count`` messages are sent or failed; return them."""
        found: list[dict[str, Any]] = []

        async def done() -> bool:
            nonlocal found
            found = [m for m in await self.messages(**filters) if m["status"] != "pending"]
            return len(found) >= count

        await self.eventually(done)
        return found

    async def prefer(self, account_id: str, **preferences: Any) -> None:
        body = {
            "contacts": {
                "phones": [TENANT_PHONE],
                "emails": [TENANT_EMAIL],
                "openids": [TENANT_OPENID],
            },
            **preferences,
        }
        answer = await self.api.put(f"/internal/preferences/{account_id}", json=body)
        assert answer.status_code == 200, answer.text


def rig_settings(
    keys: NotifyKeys, fake_url: str, smtp_port: int, secrets: Path, *, sms: str, **overrides: Any
) -> NotificationsSettings:
    files = keys.write_secret_files(secrets)
    sms_settings: dict[str, Any]
    if sms == "aliyun":
        sms_settings = {
            "aliyun_sms_access_key_id": keys.aliyun_access_key_id,
            "aliyun_sms_access_key_secret_file": files["aliyun_sms_access_key_secret_file"],
            "aliyun_sms_sign_name": "预付费电",
            "aliyun_sms_template_code": "SMS_100",
            "aliyun_sms_templates": {"supply_cut": "SMS_200"},
            "aliyun_sms_url": f"{fake_url}/aliyun",
        }
    else:
        sms_settings = {
            "tencent_sms_secret_id": keys.tencent_secret_id,
            "tencent_sms_secret_key_file": files["tencent_sms_secret_key_file"],
            "tencent_sms_sdk_app_id": keys.tencent_sdk_app_id,
            "tencent_sms_sign_name": "预付费电",
            "tencent_sms_template_id": "1000001",
            "tencent_sms_url": f"{fake_url}/tencent",
        }
    values: dict[str, Any] = {
        "environment": "development",
        **sms_settings,
        "wechat_mp_app_id": keys.wechat_app_id,
        "wechat_mp_app_secret_file": files["wechat_mp_app_secret_file"],
        "wechat_mp_template_id": "TPL_general",
        "wechat_mp_url": f"{fake_url}/wechat",
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp_port,
        "smtp_from": "notices@example.com",
        "smtp_username": keys.smtp_username,
        "smtp_password_file": files["smtp_password_file"],
        "smtp_starttls": False,
        "notifications_operator_phones": [OPERATOR_PHONE],
        "notifications_operator_emails": [OPERATOR_EMAIL],
        "notifications_operator_openids": [OPERATOR_OPENID],
        "notifications_quiet_start": None,
        "notifications_quiet_end": None,
        "notifications_dispatch_interval_seconds": 0.05,
        "notifications_first_retry_seconds": 0.1,
        "notifications_max_retry_seconds": 0.5,
        "notifications_max_attempts": 4,
        "webhook_max_attempts": 4,
        **overrides,
    }
    return NotificationsSettings(**values)


@asynccontextmanager
async def running_rig(
    backend: tuple[str, str],
    bus_prefix: str,
    tmp_path: Path,
    *,
    sms: str = "aliyun",
    **overrides: Any,
) -> AsyncIterator[Rig]:
    database_url, amqp_url = backend
    keys = NotifyKeys()
    fake = FakeNotifyProviders(keys)
    smtp = FakeSmtpServer(
        username=keys.smtp_username, password=keys.smtp_password, received=fake.received
    )
    await smtp.start()
    server = BackgroundServer()
    await server.start(fake.app)
    settings = rig_settings(keys, server.url, smtp.port, tmp_path / "secrets", sms=sms, **overrides)
    engine = create_engine(database_url)
    bus = make_bus(amqp_url, prefix=bus_prefix)
    service = build(settings, engine=engine, bus=bus)
    await service.migrate()
    service.register()
    await bus.start()
    await service.start()
    fakes = httpx.AsyncClient(base_url=server.url)
    api = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=service.internal_app()), base_url="http://notifications"
    )
    try:
        yield Rig(service, bus, fake, smtp, fakes, api, keys)
    finally:
        await api.aclose()
        await fakes.aclose()
        await service.stop()
        await bus.close()
        await engine.dispose()
        await server.stop()
        await smtp.stop()


@pytest.fixture
async def rig(backend: tuple[str, str], bus_prefix: str, tmp_path: Path) -> AsyncIterator[Rig]:
    async with running_rig(backend, bus_prefix, tmp_path) as running:
        yield running


@pytest.fixture
async def sqlite_rig(sqlite_url: str, bus_prefix: str, tmp_path: Path) -> AsyncIterator[Rig]:
    async with running_rig((sqlite_url, ""), bus_prefix, tmp_path) as running:
        yield running
