"""Where the payments service is wired: its one factory, for every entry point."""

from __future__ import annotations

import logging
from datetime import timedelta

import httpx
from prepaid_common.bus import MessageBus
from sqlalchemy.ext.asyncio import AsyncEngine

from payments.keys import describe_channels, load_alipay, load_wechat
from payments.providers.alipay import AlipayClient
from payments.providers.registry import ProviderRegistry
from payments.providers.wechatpay import WechatPayClient
from payments.service import PaymentsService
from payments.settings import PaymentsSettings

log = logging.getLogger(__name__)


def build_providers(settings: PaymentsSettings) -> ProviderRegistry:
    """Read the providers' keys and make their clients; a provider not configured is off."""
    wechat_credentials = load_wechat(settings)
    alipay_credentials = load_alipay(settings)
    for provider, state in describe_channels(wechat_credentials, alipay_credentials).items():
        log.info("payments: %s %s", provider, state)

    def http() -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=settings.payments_provider_timeout_seconds)

    return ProviderRegistry(
        wechat=WechatPayClient(wechat_credentials, http()) if wechat_credentials else None,
        alipay=AlipayClient(alipay_credentials, http()) if alipay_credentials else None,
    )


def build(
    settings: PaymentsSettings,
    *,
    engine: AsyncEngine,
    bus: MessageBus,
    providers: ProviderRegistry | None = None,
) -> PaymentsService:
    """Build the payments service on an engine and a bus (providers from the settings)."""
    return PaymentsService(
        engine=engine,
        bus=bus,
        providers=providers if providers is not None else build_providers(settings),
        reconcile_interval_seconds=settings.payments_reconcile_interval_seconds,
        order_lifetime=timedelta(seconds=settings.payments_order_lifetime_seconds),
        bill_hour=settings.payments_bill_hour,
    )
