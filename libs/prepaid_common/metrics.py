"""Prometheus metrics shared by the plumbing, and the ``/metrics`` route every service serves."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

BUS_MESSAGES = Counter(
    "prepaid_bus_messages_total",
    "Messages taken from the bus, by service, type and result (handled, duplicate)",
    ["service", "type", "result"],
)
OUTBOX_BACKLOG = Gauge(
    "prepaid_outbox_backlog", "Rows waiting in the outbox at the relay's last look", ["service"]
)
HTTP_REQUESTS = Histogram(
    "prepaid_http_request_seconds",
    "HTTP request latency by app, method, route and status",
    ["app", "method", "route", "status"],
)


def metrics_router() -> APIRouter:
    """Return a router serving ``GET /metrics`` in the Prometheus text format."""
    router = APIRouter()

    @router.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router
