"""Prometheus metrics: the plumbing's own, the request-latency middleware and ``/metrics``.

One style for every metric: each package declares its metrics at module level in its own
``metrics`` module (this one for the plumbing, ``<service>/metrics.py`` for a service's), as
prometheus_client objects with the full name written out, ``prepaid_<area>_<what>``, so that
the name on a dashboard is found by a search. The plumbing's metrics carry a ``service`` (or
``app``) label, since every process shares them; a service's own need none. Every HTTP app
serves ``/metrics`` with ``metrics_router`` and times its requests with
``observe_http_requests``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Sequence
from importlib import metadata

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)

BUS_MESSAGES = Counter(
    "prepaid_bus_messages_total",
    "Messages taken from the bus, by service, type and result (handled, duplicate)",
    ["service", "type", "result"],
)
OUTBOX_BACKLOG = Gauge(
    "prepaid_outbox_backlog", "Rows waiting in the outbox at the relay's last look", ["service"]
)
BUILD_INFO = Gauge(
    "prepaid_build_info",
    "Always 1: the product version and source revision (PREPAID_REVISION) this process runs",
    ["version", "revision"],
)
DEPENDENCY_UP = Gauge(
    "prepaid_dependency_up",
    "1 while the last look at a dependency (database, broker) succeeded, 0 after a failure",
    ["dependency"],
)
EVENT_LOOP_LAG = Histogram(
    "prepaid_event_loop_lag_seconds",
    "How late a one-second timer fires on the process's event loop: blocking code shows here",
    buckets=(0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
HTTP_REQUESTS = Histogram(
    "prepaid_http_request_seconds",
    "HTTP request latency by app, method, route and status",
    ["app", "method", "route", "status"],
)


def _installed_version() -> str:
    try:
        return metadata.version("prepaid-metering")
    except metadata.PackageNotFoundError:
        return "unknown"


# Set once per process: a dashboard shows which version runs where, and when it changed.
BUILD_INFO.labels(_installed_version(), os.environ.get("PREPAID_REVISION", "unknown")).set(1)


def count_messages_from_zero(service: str, bindings: Sequence[str]) -> None:
    """Create a subscription's message counters at 0 (handled and duplicate), one per type.

    A binding is a message type followed by ``.#`` (its shard or meter); one with another
    wildcard names no single type and creates nothing.
    """
    for binding in bindings:
        type_ = binding.removesuffix(".#")
        if "*" in type_ or "#" in type_:
            continue
        for result in ("handled", "duplicate"):
            BUS_MESSAGES.labels(service, type_, result)


def metrics_router() -> APIRouter:
    """Return a router serving ``GET /metrics`` in the Prometheus text format."""
    router = APIRouter()

    @router.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


# Methods kept as a label; any other name a client sends is "other" (no series per name).
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def http_labels(request: Request, status: int) -> tuple[str, str, str]:
    """Return bounded (method, route, status) labels: route templates, known methods only."""
    method = request.method if request.method in _KNOWN_METHODS else "other"
    # The route's template, not the path: one series per route, whatever the ids.
    route = getattr(request.scope.get("route"), "path", None)
    return method, route if isinstance(route, str) else "unmatched", str(status)


def observe_http_requests(app: FastAPI, *, app_name: str) -> None:
    """Time every request the app answers into ``prepaid_http_request_seconds``."""

    async def measure(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        HTTP_REQUESTS.labels(app_name, *http_labels(request, response.status_code)).observe(
            time.perf_counter() - started
        )
        return response

    app.middleware("http")(measure)


def serve_metrics_apart(*, host: str, port: int) -> Callable[[], None]:
    """Serve ``/metrics`` on a port of its own (a thread); return what stops it.

    For an app whose public port must not show its metrics: Prometheus scrapes this one.
    """
    server, thread = start_http_server(port, addr=host)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop
