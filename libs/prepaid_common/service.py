"""What every service is made of, and how one runs on its own (cluster mode).

A service has its tables (migrated by its own Alembic history), an outbox relay, the bus
subscriptions it consumes, an internal HTTP API and optional background loops. The same
object runs alone in its process (cluster) or beside the others in one (standalone).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import ClassVar, Protocol

import uvicorn
from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import MetaData, Table
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp, Receive, Scope, Send

from prepaid_common.bus import BatchHandler, Handler, MessageBus, Weigh, make_bus
from prepaid_common.bus.metrics import count_consumer_from_zero
from prepaid_common.correlation import CorrelateRequests, correlate_handler
from prepaid_common.db import create_engine, make_sessionmaker, upgrade_schema
from prepaid_common.failures import is_infrastructure_failure
from prepaid_common.http_errors import RETRY_AFTER_SECONDS, install_error_handlers, problem
from prepaid_common.http_guards import RequestBodyGuard
from prepaid_common.logs import configure_logging
from prepaid_common.metrics import (
    DEPENDENCY_UP,
    EVENT_LOOP_LAG,
    count_messages_from_zero,
    metrics_router,
    observe_http_requests,
)
from prepaid_common.outbox import OutboxRelay, ServiceStore, inbox_table, outbox_table
from prepaid_common.settings import CommonSettings

log = logging.getLogger(__name__)


def service_metadata(service: str) -> tuple[MetaData, ServiceTables]:
    """Return a service's metadata with its outbox and inbox tables already on it."""
    metadata = MetaData()
    return metadata, ServiceTables(outbox_table(metadata, service), inbox_table(metadata, service))


@dataclass(frozen=True)
class ServiceTables:
    """The plumbing tables every service owns."""

    outbox: Table
    inbox: Table


@dataclass(frozen=True)
class BatchSubscriptionSpec:
    """A batch subscription a service asks for (queue name without the service prefix)."""

    queue: str
    bindings: Sequence[str]
    handler: BatchHandler
    max_batch: int = 500
    max_wait: float = 0.05
    # How many items a message counts for in max_batch (default: one).
    weigh: Weigh | None = None
    # Unacknowledged messages a broker may hand over (None: the bus decides).
    prefetch: int | None = None
    # One consumer at a time across every process consuming the queue (a sharded queue).
    single_active_consumer: bool = False


class Service:
    """Base of the five services: subclasses set the class attributes and add behaviour."""

    name: ClassVar[str]
    migrations_dir: ClassVar[Path]
    tables: ClassVar[ServiceTables]

    def __init__(self, *, engine: AsyncEngine, bus: MessageBus) -> None:
        self.engine = engine
        self.bus = bus
        self.store = ServiceStore(
            self.name, make_sessionmaker(engine), self.tables.outbox, self.tables.inbox
        )
        self.relay = OutboxRelay(self.store, bus)
        self._loops: list[asyncio.Task[None]] = []

    # --- what subclasses provide -------------------------------------------------------
    def subscriptions(self) -> Sequence[tuple[str, Sequence[str], Handler]]:
        """Return (queue, topic patterns, handler) for each bus subscription."""
        return ()

    def batch_subscriptions(self) -> Sequence[BatchSubscriptionSpec]:
        """Return the subscriptions whose handler takes a batch of messages."""
        return ()

    def routers(self) -> Sequence[APIRouter]:
        """Return the internal API's routers."""
        return ()

    async def background(self) -> Sequence[asyncio.Task[None]]:
        """Start the service's own loops; return their tasks."""
        return ()

    # --- lifecycle ---------------------------------------------------------------------
    async def migrate(self) -> None:
        """Upgrade this service's tables to the newest revision."""
        await upgrade_schema(self.engine, self.migrations_dir, f"{self.name}_alembic_version")

    def register(self) -> None:
        """Register the service's subscriptions on the bus (before the bus starts)."""
        for queue, bindings, handler in self.subscriptions():
            self.bus.subscribe(f"{self.name}.{queue}", bindings, correlate_handler(handler))
            count_consumer_from_zero(f"{self.name}.{queue}")
            count_messages_from_zero(self.name, bindings)
        for spec in self.batch_subscriptions():
            count_consumer_from_zero(f"{self.name}.{spec.queue}")
            count_messages_from_zero(self.name, spec.bindings)
            self.bus.subscribe_batch(
                f"{self.name}.{spec.queue}",
                spec.bindings,
                spec.handler,
                max_batch=spec.max_batch,
                max_wait=spec.max_wait,
                weigh=spec.weigh,
                prefetch=spec.prefetch,
                single_active_consumer=spec.single_active_consumer,
            )

    async def start(self) -> None:
        """Start the outbox relay and the service's loops."""
        self.relay.start()
        self._loops = list(await self.background())

    async def stop(self) -> None:
        """Stop loops, then the relay."""
        for task in self._loops:
            task.cancel()
        for task in self._loops:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._loops.clear()
        await self.relay.stop()

    def ended_loops(self) -> list[str]:
        """Return the background loops (and the outbox relay) that stopped on their own."""
        ended = [task.get_name() for task in self._loops if task.done()]
        return [*ended, "outbox-relay"] if self.relay.ended else ended

    def internal_app(self, *, service_credential: str | None = None) -> FastAPI:
        """Build the service's internal HTTP API with ``/healthz`` and ``/metrics``.

        With a credential, every other route refuses a call that does not carry it (what a
        deployment always sets); without one, the app is for a test's in-process client.
        """
        app = FastAPI(title=f"{self.name} (internal)", version="1")
        install_error_handlers(app)
        app.add_middleware(RequestBodyGuard)
        observe_http_requests(app, app_name=self.name)
        if service_credential is not None:
            app.add_middleware(RequireServiceCredential, credential=service_credential)
        # Outermost: every log line of the request, refusals included, carries its id.
        app.add_middleware(CorrelateRequests)
        for router in self.routers():
            app.include_router(router)
        app.include_router(metrics_router())
        app.include_router(readiness_router(self.engine, self.bus))

        @app.get("/healthz", include_in_schema=False)
        async def healthz() -> JSONResponse:
            # Live means the loop answers and none of the service's own loops has died: a
            # process whose relay or sweep crashed does nothing while it answers, so the
            # liveness probe restarts it.
            ended = self.ended_loops()
            if ended:
                return problem(503, f"background loops ended: {', '.join(ended)}", "unavailable")
            return JSONResponse({"status": "ok", "service": self.name})

        return app


# The header the gateway's clients send to the internal APIs.
SERVICE_CREDENTIAL_HEADER = "X-Service-Credential"
# Probes and Prometheus call these without the credential; the NetworkPolicy limits who can.
OPEN_INTERNAL_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class RequireServiceCredential:
    """ASGI middleware: refuse (401) a call to an internal route without the credential."""

    def __init__(self, app: ASGIApp, *, credential: str) -> None:
        if not credential:
            raise ValueError("an empty service credential would let every call through")
        self.app = app
        self.expected = credential.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_INTERNAL_PATHS:
            await self.app(scope, receive, send)
            return
        header = SERVICE_CREDENTIAL_HEADER.lower().encode()
        given = next((value for name, value in scope["headers"] if name == header), b"")
        # Constant time: the answer's timing says nothing about how much of a guess was right.
        if hmac.compare_digest(given, self.expected):
            await self.app(scope, receive, send)
            return
        refusal = problem(401, "a service credential is required", "unauthorized")
        await refusal(scope, receive, send)


async def wait_for_dependencies(
    engine: AsyncEngine, bus: MessageBus, *, first_delay: float = 0.5, max_delay: float = 10.0
) -> None:
    """Return once the database answers and the broker accepts a connection; wait meanwhile."""
    await _wait_for("database", partial(check_database, engine), first_delay, max_delay)
    await _wait_for("broker", bus.check, first_delay, max_delay)


async def check_database(engine: AsyncEngine) -> None:
    """Raise unless the database answers a trivial query."""
    async with engine.connect() as connection:
        await connection.exec_driver_sql("SELECT 1")


async def _wait_for(
    dependency: str, check: Callable[[], Awaitable[None]], first_delay: float, max_delay: float
) -> None:
    delay = first_delay
    attempt = 1
    while True:
        try:
            async with asyncio.timeout(_CHECK_TIMEOUT):
                await check()
        except Exception as error:
            if not is_infrastructure_failure(error):
                raise  # a wrong URL or a refused password: waiting will not fix it
            log.warning(
                f"waiting for the {dependency}: not reachable yet; trying again",
                extra={
                    "dependency": dependency,
                    "attempt": attempt,
                    "retry_in_seconds": delay,
                    "error": repr(error),
                },
            )
            await asyncio.sleep(delay)
            delay = min(2 * delay, max_delay)
            attempt += 1
            continue
        if attempt > 1:
            log.warning(f"the {dependency} is reachable", extra={"dependency": dependency})
        return


# How long one look at a dependency may take before it counts as down.
_CHECK_TIMEOUT = 5.0


def readiness_router(engine: AsyncEngine, bus: MessageBus) -> APIRouter:
    """Return a router serving ``GET /readyz``: 200 while the database and broker answer."""
    router = APIRouter()

    @router.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        for dependency, check in (
            ("database", partial(check_database, engine)),
            ("broker", bus.check),
        ):
            try:
                async with asyncio.timeout(_READY_TIMEOUT):
                    await check()
            except Exception as error:
                DEPENDENCY_UP.labels(dependency).set(0)
                return problem(
                    503,
                    f"the {dependency} is unavailable: {error!r}",
                    "unavailable",
                    headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
                )
            DEPENDENCY_UP.labels(dependency).set(1)
        return JSONResponse({"status": "ready"})

    return router


async def watch_event_loop(*, every: float = 1.0) -> None:
    """Time a timer of ``every`` seconds forever: its lateness is the event loop's lag."""
    loop = asyncio.get_running_loop()
    while True:
        expected = loop.time() + every
        await asyncio.sleep(every)
        EVENT_LOOP_LAG.observe(max(0.0, loop.time() - expected))


async def watch_dependencies(engine: AsyncEngine, bus: MessageBus, *, every: float = 15.0) -> None:
    """Look at the database and the broker every ``every`` seconds into the dependency gauge.

    Probes call /readyz too, but a process nobody probes (run-cluster.sh) still reports.
    """
    while True:
        for dependency, check in (
            ("database", partial(check_database, engine)),
            ("broker", bus.check),
        ):
            try:
                async with asyncio.timeout(_CHECK_TIMEOUT):
                    await check()
            except Exception:
                DEPENDENCY_UP.labels(dependency).set(0)
            else:
                DEPENDENCY_UP.labels(dependency).set(1)
        await asyncio.sleep(every)


# A readiness probe answers within the probe's own timeout (1 s by default in Kubernetes).
_READY_TIMEOUT = 0.8


class ServiceFactory(Protocol):
    """What a service's ``bootstrap.build`` becomes once its settings are bound."""

    def __call__(self, *, engine: AsyncEngine, bus: MessageBus) -> Service: ...


async def run_alone(build: ServiceFactory, *, port: int, settings: CommonSettings) -> None:
    """Run one service in its own process: migrate, consume, relay, serve its internal API."""
    configure_logging(settings.log_level, settings.log_format)
    engine = create_engine(settings.database_url)
    bus = make_bus(settings.amqp_url, prefix=settings.bus_prefix)
    service = build(engine=engine, bus=bus)
    # Started while the database or the broker is down, a service waits rather than exits.
    while True:
        await wait_for_dependencies(engine, bus)
        try:
            await service.migrate()
            break
        except Exception as error:
            if not is_infrastructure_failure(error):
                raise
            log.warning("the database went away while migrating; waiting for it again")
    service.register()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await bus.start()
        await service.start()
        watchers = [
            asyncio.create_task(watch_dependencies(engine, bus), name="dependency-watch"),
            asyncio.create_task(watch_event_loop(), name="event-loop-watch"),
        ]
        log.info("service started", extra={"service": service.name, "port": port})
        try:
            yield
        finally:
            for watcher in watchers:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            await service.stop()
            await bus.close()
            await engine.dispose()
            log.info("service stopped", extra={"service": service.name})

    app = service.internal_app(service_credential=settings.effective_service_credential())
    app.router.lifespan_context = lifespan
    server = uvicorn.Server(
        uvicorn.Config(app, host=settings.listen_host, port=port, log_config=None, access_log=False)
    )
    await server.serve()


def install_stop_signals(stop: asyncio.Event) -> None:
    """Set ``stop`` on SIGTERM or SIGINT (graceful shutdown)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
