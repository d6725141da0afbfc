"""The gateway service: owns users and the audit log, serves the public REST API."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI
from prepaid_common.bus import MessageBus
from prepaid_common.dead_letters import dead_letters_of
from prepaid_common.metrics import serve_metrics_apart
from prepaid_common.service import Service, readiness_router
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.app import build_public_app
from gateway.operations import GatewayOperations
from gateway.settings import GatewaySettings
from gateway.tables import plumbing
from gateway.upstream import Upstreams


class GatewayService(Service):
    """The gateway: its users and audit log (operations), and the public app over the others."""

    name = "gateway"
    migrations_dir = Path(__file__).parent / "migrations"
    tables = plumbing

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        bus: MessageBus,
        upstreams: Upstreams,
        settings: GatewaySettings,
        seed_admin_on_start: bool = False,
    ) -> None:
        super().__init__(engine=engine, bus=bus)
        self.upstreams = upstreams
        self.settings = settings
        self.operations = GatewayOperations(store=self.store, settings=settings)
        # Run alone, the gateway makes its first admin itself and shows a generated password
        # once; beside the others, the standalone product does both and shows it its own way.
        self.seed_admin_on_start = seed_admin_on_start
        self._stop_metrics: Callable[[], None] | None = None

    async def ensure_admin(self) -> str | None:
        """Create the ``admin`` user on first start; return a generated password if any."""
        return await self.operations.ensure_admin()

    async def start(self) -> None:
        """Start the relay; create the first admin if asked to, printing a generated password."""
        await super().start()
        if self.settings.metrics_port is not None:
            self._stop_metrics = serve_metrics_apart(
                host=self.settings.listen_host, port=self.settings.metrics_port
            )
        if self.seed_admin_on_start:
            generated = await self.ensure_admin()
            if generated:
                print(f"Created user admin with password: {generated}", flush=True)

    async def stop(self) -> None:
        """Stop the relay, then close the clients of the services behind the gateway."""
        await super().stop()
        if self._stop_metrics is not None:
            self._stop_metrics()
            self._stop_metrics = None
        await self.upstreams.aclose()

    def public_app(self) -> FastAPI:
        """Build the public REST API."""
        app = build_public_app(operations=self.operations, upstreams=self.upstreams)
        app.state.dead_letters = dead_letters_of(self.bus)  # for api/dead_letters.py
        app.include_router(readiness_router(self.engine, self.bus))
        return app

    def internal_app(self, *, service_credential: str | None = None) -> FastAPI:
        """Return the public API: the gateway has no internal one (run alone, it serves this)."""
        return self.public_app()
