"""The payments service: takes money in and tells billing once, exactly."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

from fastapi import APIRouter
from prepaid_common.bus import MessageBus
from prepaid_common.contracts import utcnow
from prepaid_common.service import Service
from sqlalchemy.ext.asyncio import AsyncEngine

from payments import api
from payments.domain.orders import ORDER_LIFETIME, Provider
from payments.operations import orders, refunds
from payments.operations.orders import BEIJING
from payments.providers.registry import ProviderRegistry
from payments.tables import metadata, plumbing

log = logging.getLogger(__name__)


class PaymentsService(Service):
    name = "payments"
    migrations_dir = Path(__file__).parent / "migrations"
    tables = plumbing
    metadata = metadata

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        bus: MessageBus,
        providers: ProviderRegistry | None = None,
        reconcile_interval_seconds: float = 5.0,
        order_lifetime: timedelta = ORDER_LIFETIME,
        bill_hour: int = 10,
    ) -> None:
        super().__init__(engine=engine, bus=bus)
        self.providers = providers or ProviderRegistry()
        self.reconcile_interval_seconds = reconcile_interval_seconds
        self.order_lifetime = order_lifetime
        self.bill_hour = bill_hour

    def routers(self) -> Sequence[APIRouter]:
        return [api.internal_router(self.store, self.providers, order_lifetime=self.order_lifetime)]

    async def background(self) -> Sequence[asyncio.Task[None]]:
        """Start the reconciliation loop when a provider is on."""
        if self.providers.wechat is None and self.providers.alipay is None:
            return ()
        return (
            asyncio.create_task(self._reconcile_forever(), name="payments-reconcile"),
            asyncio.create_task(self._check_bills_daily(), name="payments-bills"),
        )

    async def _reconcile_forever(self) -> None:
        while True:
            try:
                await orders.reconcile_once(self.store, self.providers)
                await refunds.reconcile_refunds(self.store, self.providers, now=utcnow())
            except Exception:
                # One bad round (the database away, say) must not end reconciliation.
                log.exception("reconciliation round failed")
            await asyncio.sleep(self.reconcile_interval_seconds)

    async def _check_bills_daily(self) -> None:
        while True:
            now = datetime.now(BEIJING)
            run_at = now.replace(hour=self.bill_hour, minute=0, second=0, microsecond=0)
            if run_at <= now:
                run_at += timedelta(days=1)
            await asyncio.sleep((run_at - now).total_seconds())
            yesterday = run_at.date() - timedelta(days=1)
            for provider, client in [
                (Provider.WECHATPAY, self.providers.wechat),
                (Provider.ALIPAY, self.providers.alipay),
            ]:
                if client is None:
                    continue
                try:
                    await orders.check_bill(
                        self.store, self.providers, provider=provider, day=yesterday
                    )
                except Exception:
                    # Tomorrow's run tries again; an operator can run it by hand meanwhile.
                    log.exception("%s bill of %s could not be checked", provider, yesterday)

    async def stop(self) -> None:
        """Stop the loops and the relay, then close the providers' HTTP clients."""
        await super().stop()
        for client in (self.providers.wechat, self.providers.alipay):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.http.aclose()
