"""Wire the gateway: its store and operations, and clients for the services it fronts."""

from __future__ import annotations

import httpx
from prepaid_common.bus import MessageBus
from prepaid_common.correlation import send_correlation_id
from prepaid_common.service import SERVICE_CREDENTIAL_HEADER
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.service import GatewayService
from gateway.settings import GatewaySettings
from gateway.upstream import Upstreams


def http_upstreams(settings: GatewaySettings) -> Upstreams:
    """Return clients for the four services at their configured URLs, with the credential."""
    credential = {SERVICE_CREDENTIAL_HEADER: settings.effective_service_credential()}

    def client(url: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=url,
            timeout=settings.upstream_timeout_seconds,
            headers=credential,
            event_hooks={"request": [send_correlation_id]},
        )

    return Upstreams(
        collector=client(settings.collector_url),
        billing=client(settings.billing_url),
        control=client(settings.control_url),
        payments=client(settings.payments_url),
    )


def build(
    settings: GatewaySettings,
    *,
    engine: AsyncEngine,
    bus: MessageBus,
    upstreams: Upstreams | None = None,
    seed_admin_on_start: bool = False,
) -> GatewayService:
    """Build the gateway; it reaches the services over HTTP unless given other clients."""
    return GatewayService(
        engine=engine,
        bus=bus,
        upstreams=upstreams if upstreams is not None else http_upstreams(settings),
        settings=settings,
        seed_admin_on_start=seed_admin_on_start,
    )
