"""docs/api.md and the OpenAPI the gateway serves name the same public routes."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from gateway.bootstrap import build
from gateway.settings import GatewaySettings
from gateway.upstream import Upstreams
from prepaid_common.bus.memory import InProcessBus
from prepaid_common.db import create_engine
from testkit.gateway import not_found

ROOT = Path(__file__).resolve().parents[3]
# docs/api.md writes routes as `GET /meters/{id}` (relative to /api/v1).
ROUTE = re.compile(r"`((?:GET|POST|PUT|PATCH|DELETE) /[^`\s]*)`")


def _shape(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path.split("?")[0].removeprefix("/api/v1"))


def documented(*docs: str) -> set[tuple[str, str]]:
    """Return (method, path shape) of every route a document names."""
    found = set()
    for name in docs:
        for match in ROUTE.finditer((ROOT / "docs" / name).read_text(encoding="utf-8")):
            method, path = match.group(1).split(" ", 1)
            found.add((method, _shape(path)))
    return found


def served(tmp_path: Path) -> set[tuple[str, str]]:
    """Return (method, path shape) of every public route in the gateway's OpenAPI."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}")
    nowhere = httpx.AsyncClient(transport=httpx.MockTransport(not_found), base_url="http://x")
    upstreams = Upstreams(collector=nowhere, billing=nowhere, control=nowhere, payments=nowhere)
    service = build(GatewaySettings(), engine=engine, bus=InProcessBus(), upstreams=upstreams)
    paths = service.public_app().openapi()["paths"]
    return {
        (method.upper(), _shape(path))
        for path, by_method in paths.items()
        if path.startswith("/api/v1/")
        for method in by_method
    }


def test_every_public_route_is_documented_and_every_documented_route_exists(
    tmp_path: Path,
) -> None:
    api = served(tmp_path)
    in_api_md = {
        route for route in documented("api.md") if route[1] not in ("/healthz", "/metrics")
    }
    # Payment routes are documented with the payments (docs/payments.md names the providers'
    # own URLs too, which the gateway does not serve).
    assert sorted(api - in_api_md - documented("payments.md")) == [], "served, not documented"
    assert sorted(in_api_md - api) == [], "documented in docs/api.md, not served"
