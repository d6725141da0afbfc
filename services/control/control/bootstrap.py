"""Where the control service is wired: its one factory, for every entry point."""

from __future__ import annotations

from prepaid_common.bus import MessageBus
from sqlalchemy.ext.asyncio import AsyncEngine

from control.domain import PlainCommandSealer
from control.handlers import CommandHandlers
from control.service import ControlService
from control.settings import ControlSettings


def build(settings: ControlSettings, *, engine: AsyncEngine, bus: MessageBus) -> ControlService:
    """Build the control service on an engine and a bus."""
    del settings  # nothing of its own to set yet; kept so every service is built alike
    # Commands go out in the plain envelope until the 3DES sealer lands.
    return ControlService(engine=engine, bus=bus, handlers=CommandHandlers(PlainCommandSealer()))
