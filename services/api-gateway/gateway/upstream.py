"""Calls to the services' internal APIs, with their errors carried through unchanged."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
from prepaid_common.errors import (
    BadGateway,
    Conflict,
    Invalid,
    NotFound,
    ServiceError,
    Unavailable,
)

_BY_STATUS: dict[int, type[ServiceError]] = {404: NotFound, 409: Conflict, 422: Invalid}


class Upstream:
    """One internal service, reached over HTTP (or in process through an ASGI transport)."""

    def __init__(self, name: str, client: httpx.AsyncClient) -> None:
        self.name = name
        self.client = client

    async def call(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None
    ) -> tuple[int, Any]:
        """Return (status, body); raise the matching ServiceError for a 4xx or 5xx."""
        # Ids were checked at the edge; escaping is the second lock: whatever a path holds
        # ('?', '#', '%', a space) reaches the service as the one segment it was.
        path = quote(path, safe="/")
        try:
            response = await self.client.request(method, path, params=params, json=json)
        except httpx.TransportError as error:
            raise Unavailable(f"{self.name} service unreachable: {error!r}") from error
        body = _body(response)
        if response.status_code < 400:
            return response.status_code, body
        detail = _detail(body) or f"{self.name} answered {response.status_code}"
        if response.status_code == 503:
            raise Unavailable(f"{self.name} unavailable: {detail}")
        error_type = _BY_STATUS.get(response.status_code)
        if error_type is not None:
            raise error_type(detail)
        if 400 <= response.status_code < 500:
            raise ServiceError(detail)
        raise BadGateway(f"{self.name} failed: {detail}")

    async def get(self, path: str, **params: Any) -> Any:
        _, body = await self.call(
            "GET", path, params={k: v for k, v in params.items() if v is not None}
        )
        return body

    async def post(self, path: str, json: Any) -> tuple[int, Any]:
        return await self.call("POST", path, json=json)


def _body(response: httpx.Response) -> Any:
    """The answer's JSON, or its text when it is not JSON (a proxy's or server's own page)."""
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return response.text


def _detail(body: Any) -> str:
    if isinstance(body, dict):
        detail = body.get("detail")
        if isinstance(detail, str):
            return detail
        if isinstance(detail, list):
            # FastAPI validation errors: keep the field path and message of each.
            return "; ".join(
                f"{'.'.join(str(p) for p in item.get('loc', []))}: {item.get('msg')}"
                for item in detail
                if isinstance(item, dict)
            )
    if isinstance(body, str):
        return body.strip()[:200]  # a plain-text error: its first words say what happened
    return ""


class Upstreams:
    """The four services the gateway fronts."""

    def __init__(
        self,
        *,
        collector: httpx.AsyncClient,
        billing: httpx.AsyncClient,
        control: httpx.AsyncClient,
        payments: httpx.AsyncClient,
    ) -> None:
        self.collector = Upstream("collector", collector)
        self.billing = Upstream("billing", billing)
        self.control = Upstream("control", control)
        self.payments = Upstream("payments", payments)

    async def aclose(self) -> None:
        for upstream in (self.collector, self.billing, self.control, self.payments):
            await upstream.client.aclose()
