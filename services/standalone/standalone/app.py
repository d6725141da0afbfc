"""Wire every service into one process: one SQLite engine, the in-process bus, the simulator.

The gateway reaches the other services' internal apps through ``httpx.ASGITransport``: the
same calls as in a cluster, without sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from dataclasses import asdict, dataclass
from datetime import timedelta
from decimal import Decimal

import httpx
from billing.bootstrap import build as build_billing
from collector.bootstrap import build as build_collector
from control.bootstrap import build as build_control
from fastapi import FastAPI
from gateway.bootstrap import build as build_gateway
from gateway.upstream import Upstreams
from payments.bootstrap import build as build_payments
from prepaid_common.bus import make_bus
from prepaid_common.db import create_engine
from prepaid_common.service import SERVICE_CREDENTIAL_HEADER, Service
from simulator import FieldSimulator

from standalone.demo_payments import DemoPayments, start_demo_order
from standalone.seed import DemoDtu, DemoMeter, low_credit_accounts, seed_demo
from standalone.settings import StandaloneSettings

log = logging.getLogger(__name__)


@dataclass
class Credentials:
    admin_password: str | None
    tenant_password: str


class Standalone:
    """The whole product in one process."""

    def __init__(self, settings: StandaloneSettings) -> None:
        self.settings = settings
        self.low_credit_accounts: list[str] = []
        # Standalone means SQLite and the in-process bus; tests run the very same wiring on
        # PostgreSQL and RabbitMQ by setting PREPAID_DATABASE_URL and PREPAID_AMQP_URL.
        self.engine = create_engine(settings.effective_database_url())
        self.bus = make_bus(settings.amqp_url, prefix=settings.bus_prefix)
        # Each service is built by its own bootstrap from the one settings object, so every
        # setting a cluster honours (profiles, timeouts, gaps, ...) is honoured here too.
        self.collector = build_collector(settings, engine=self.engine, bus=self.bus)
        # The simulator's clock runs `sim_speed` times faster than the server's, so the
        # most power a meter can plausibly show between two readings scales with it.
        speedup = Decimal(str(max(settings.sim_speed, 1.0))) if settings.simulator else Decimal(1)
        self.billing = build_billing(
            settings.model_copy(
                update={"billing_max_power_kw": settings.billing_max_power_kw * speedup}
            ),
            engine=self.engine,
            bus=self.bus,
        )
        self.control = build_control(settings, engine=self.engine, bus=self.bus)
        # With the simulator and no real provider configured, fake WeChat Pay and Alipay
        # take the payments (payments is configured for them as for the real ones).
        self.demo_payments: DemoPayments | None = None
        self.demo_order: dict[str, str] | None = None
        payments_settings = settings
        if (
            settings.simulator
            and settings.sim_payments
            and not (settings.wechatpay_enabled() or settings.alipay_enabled())
        ):
            self.demo_payments = DemoPayments(
                settings.data_dir, host="127.0.0.1", port=settings.sim_payments_port
            )
            payments_settings = settings.model_copy(
                update=self.demo_payments.payments_settings(
                    public_base_url=settings.public_base_url
                    or f"http://127.0.0.1:{settings.http_port}"
                )
            )
        self.payments = build_payments(payments_settings, engine=self.engine, bus=self.bus)

        # In process the internal apps check a credential too (the same code as in a
        # cluster); no other process needs it, so a fresh one each start will do.
        credential = secrets.token_urlsafe(32)

        def local(service: Service) -> httpx.AsyncClient:
            return httpx.AsyncClient(
                transport=httpx.ASGITransport(
                    app=service.internal_app(service_credential=credential)
                ),
                base_url=f"http://{service.name}.local",
                timeout=settings.upstream_timeout_seconds,
                headers={SERVICE_CREDENTIAL_HEADER: credential},
            )

        self.upstreams = Upstreams(
            collector=local(self.collector),
            billing=local(self.billing),
            control=local(self.control),
            payments=local(self.payments),
        )
        self.gateway = build_gateway(
            settings, engine=self.engine, bus=self.bus, upstreams=self.upstreams
        )
        self.services: list[Service] = [
            self.collector,
            self.billing,
            self.control,
            self.payments,
            self.gateway,
        ]
        self.simulator: FieldSimulator | None = None
        self.seeding: asyncio.Task[None] | None = None  # demo data loading in the background
        self.app: FastAPI = self.gateway.public_app()

    async def start(self, *, seed_in_background: bool = False) -> Credentials:
        """Migrate, start every service and the simulator, load demo data (then, or with
        ``seed_in_background`` while the API already serves: ``make run``)."""
        if self.demo_payments is not None:
            await self.demo_payments.start()
        for service in self.services:
            await service.migrate()
            service.register()
        await self.bus.start()
        for service in self.services:
            await service.start()
        generated = await self.gateway.ensure_admin()
        credentials = Credentials(
            admin_password=generated,
            tenant_password=self._tenant_password(),
        )
        if self.settings.simulator:
            self.simulator = FieldSimulator(
                self.settings.sim_dtus,
                self.settings.sim_meters,
                base_port=self.settings.sim_base_port,
                speed=self.settings.sim_speed,
                seed=self.settings.sim_seed,
            )
            await self.simulator.start()
            if self.settings.demo_data:
                if seed_in_background:
                    self.seeding = asyncio.create_task(self._seed(credentials), name="demo-data")
                else:
                    await self._seed(credentials)
        return credentials

    def _tenant_password(self) -> str:
        # Kept beside the database so the demo tenants' password survives restarts.
        path = self.settings.data_dir / "demo-tenant-password"
        if path.exists():
            return path.read_text().strip()
        path.parent.mkdir(parents=True, exist_ok=True)
        password = secrets.token_urlsafe(9)
        path.write_text(password + "\n")
        path.chmod(0o600)
        return password

    def demo_layout(self) -> list[DemoDtu]:
        """The simulator's DTUs and meters as the demo data registers them."""
        assert self.simulator is not None
        return [
            DemoDtu(
                dtu.dtu_id,
                dtu.host,
                dtu.port,
                [DemoMeter(m.meter_id, m.unit_id, m.profile) for m in dtu.meters],
            )
            for dtu in self.simulator.dtus
        ]

    async def _seed(self, credentials: Credentials) -> None:
        layout = self.demo_layout()
        # What was loaded, kept beside the database: a restart onto the same field loads
        # nothing again (a 2,000-meter site spent minutes re-checking every account).
        marker = self.settings.data_dir / "demo-data.json"
        loaded = json.dumps([asdict(dtu) for dtu in layout], sort_keys=True)
        if marker.exists() and marker.read_text() == loaded:
            self.low_credit_accounts = low_credit_accounts(layout)
            log.info("demo data already loaded", extra={"meters": _meters_in(layout)})
        else:
            await self._load_demo_data(layout, credentials)
            marker.write_text(loaded)
            log.info("demo data loaded", extra={"meters": _meters_in(layout)})
        if self.demo_payments is not None and self.low_credit_accounts:
            async with await self._admin_client() as client:
                self.demo_order = await start_demo_order(client, self.low_credit_accounts[0])

    async def _admin_client(self) -> httpx.AsyncClient:
        """A client of the public API in process, signed in as the admin. In process we may
        sign for the admin ourselves: no password needs keeping. An hour covers the largest
        site's first load (a token that expired mid-way made the seeding die on its own 401)."""
        token = await self.gateway.operations.token_for(username="admin", ttl=timedelta(hours=1))
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app),
            base_url="http://gateway.local",
            timeout=60,
            headers={"Authorization": f"Bearer {token.access_token}"},
        )

    async def _load_demo_data(self, layout: list[DemoDtu], credentials: Credentials) -> None:
        async with await self._admin_client() as client:
            self.low_credit_accounts = await seed_demo(
                client, layout, tenant_password=credentials.tenant_password
            )

    async def stop(self) -> None:
        """Stop the simulator, the services and the bus; close the database."""
        if self.seeding is not None and not self.seeding.done():
            self.seeding.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.seeding
        if self.simulator is not None:
            await self.simulator.stop()
        for service in reversed(self.services):
            await service.stop()
        if self.demo_payments is not None:
            await self.demo_payments.stop()
        await self.bus.close()
        await self.upstreams.aclose()
        await self.engine.dispose()


def _meters_in(layout: list[DemoDtu]) -> int:
    return sum(len(dtu.meters) for dtu in layout)
