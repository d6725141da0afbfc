"""Every HTTP app times its requests by route template and serves them at ``/metrics``."""

from __future__ import annotations

import uuid

import httpx
from fastapi import FastAPI
from prepaid_common.metrics import metrics_router, observe_http_requests
from prometheus_client import REGISTRY


def requests_seen(app_name: str, method: str, route: str, status: int) -> float:
    labels = {"app": app_name, "method": method, "route": route, "status": str(status)}
    return REGISTRY.get_sample_value("prepaid_http_request_seconds_count", labels) or 0.0


async def test_requests_are_timed_by_route_template_and_served() -> None:
    app_name = f"test-{uuid.uuid4().hex[:8]}"  # the registry is process-wide
    app = FastAPI()
    observe_http_requests(app, app_name=app_name)
    app.include_router(metrics_router())

    @app.get("/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for thing_id in ("a", "b"):
            assert (await client.get(f"/things/{thing_id}")).status_code == 200
        assert (await client.get("/nowhere")).status_code == 404
        exposition = (await client.get("/metrics")).text

    assert requests_seen(app_name, "GET", "/things/{thing_id}", 200) == 2
    assert requests_seen(app_name, "GET", "unmatched", 404) == 1
    assert f'prepaid_http_request_seconds_count{{app="{app_name}"' in exposition
