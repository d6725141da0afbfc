"""Where the payments service is wired: its one factory, for every entry point."""

from __future__ import annotations

from prepaid_common.bus import MessageBus
from sqlalchemy.ext.asyncio import AsyncEngine

from payments.service import PaymentsService
from payments.settings import PaymentsSettings


def build(settings: PaymentsSettings, *, engine: AsyncEngine, bus: MessageBus) -> PaymentsService:
    """Build the payments service on an engine and a bus."""
    del settings  # nothing of its own to set yet; kept so every service is built alike
    return PaymentsService(engine=engine, bus=bus)
