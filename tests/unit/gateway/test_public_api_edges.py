"""The public API at its edge: what a client sends that no service could take is a 4xx
problem (RFC 9457) before anything is forwarded, and the OpenAPI says so."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from gateway.bootstrap import build
from gateway.service import GatewayService
from gateway.settings import GatewaySettings
from gateway.upstream import Upstream, Upstreams
from prepaid_common.bus.memory import InProcessBus
from prepaid_common.contracts.api.billing import AccountView
from prepaid_common.contracts.api.gateway import ApiKeyBody, Token, UserView
from prepaid_common.contracts.api.payments import PaymentView
from prepaid_common.contracts.api.problems import Problem
from prepaid_common.db import create_engine
from pydantic import SecretStr

PASSWORD = "edge-admin-password-1"


@pytest.fixture
async def admin(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, list[httpx.Request]]]:
    """An admin's client on the public app; the services behind it record and answer 404."""
    forwarded: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        forwarded.append(request)
        return httpx.Response(404, json={"detail": "nothing here", "code": "not_found"})

    def client(name: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.MockTransport(answer), base_url=f"http://{name}.local"
        )

    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}")
    settings = GatewaySettings(
        token_secret=SecretStr("edge-secret-0123456789-0123456789-0123"),
        admin_password=SecretStr(PASSWORD),
    )
    upstreams = Upstreams(
        collector=client("collector"),
        billing=client("billing"),
        control=client("control"),
        payments=client("payments"),
    )
    service: GatewayService = build(
        settings, engine=engine, bus=InProcessBus(), upstreams=upstreams
    )
    await service.migrate()
    await service.ensure_admin()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=service.public_app()), base_url="http://test"
    ) as http:
        token = await http.post(
            "/api/v1/auth/token", data={"username": "admin", "password": PASSWORD}
        )
        http.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        yield http, forwarded
    await upstreams.aclose()
    await engine.dispose()


def assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, object] = response.json()
    assert {"type", "title", "status", "detail", "code"} <= body.keys()
    assert body["status"] == status
    return body


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/accounts/a.b",
        "/api/v1/accounts/a%23b",
        "/api/v1/accounts/a%3Fb",
        "/api/v1/accounts/a%00b",
        "/api/v1/meters/%0A",
        "/api/v1/tariffs/" + "x" * 65,
        "/api/v1/accounts/shop:12/statements/0000-01",
        "/api/v1/accounts/shop:12/statements/2026-13",
        "/api/v1/accounts/shop:12/statements/10000-01",
        "/api/v1/accounts?offset=100000000000000000000",
        "/api/v1/meters/M1/commands?limit=0",
    ],
)
async def test_what_no_service_could_take_is_a_422_and_nothing_is_forwarded(
    admin: tuple[httpx.AsyncClient, list[httpx.Request]], path: str
) -> None:
    client, forwarded = admin
    body = assert_problem(await client.get(path), 422)
    assert body["code"] == "invalid"
    assert isinstance(body["errors"], list)
    assert body["errors"]
    assert forwarded == []


async def test_nan_and_infinity_in_a_body_are_a_422_not_a_500(
    admin: tuple[httpx.AsyncClient, list[httpx.Request]],
) -> None:
    client, forwarded = admin
    for number in ("NaN", "Infinity", "-Infinity"):
        response = await client.post(
            "/api/v1/accounts/shop:12/top-ups",
            content=f'{{"amount": {number}, "receipt": "R1"}}',
            headers={"Content-Type": "application/json"},
        )
        assert_problem(response, 422)
    assert forwarded == []


async def test_a_422_never_echoes_a_big_input(
    admin: tuple[httpx.AsyncClient, list[httpx.Request]],
) -> None:
    client, _ = admin
    big = "x" * 200_000
    response = await client.post(
        "/api/v1/accounts/shop:12/top-ups", json={"amount": big, "receipt": "R1"}
    )
    assert_problem(response, 422)
    assert len(response.content) < 5_000


async def test_a_services_error_reaches_the_client_as_a_problem(
    admin: tuple[httpx.AsyncClient, list[httpx.Request]],
) -> None:
    client, forwarded = admin
    body = assert_problem(await client.get("/api/v1/accounts/shop:12"), 404)
    assert (body["code"], body["title"]) == ("not_found", "Not Found")
    assert [r.url.raw_path for r in forwarded] == [b"/internal/accounts/shop%3A12"]


async def test_a_forwarded_path_is_escaped_segment_by_segment() -> None:
    seen: list[bytes] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.raw_path)
        return httpx.Response(200, json={})

    upstream = Upstream(
        "billing",
        httpx.AsyncClient(transport=httpx.MockTransport(answer), base_url="http://b"),
    )
    await upstream.get("/internal/accounts/a?b#c d%")
    assert seen == [b"/internal/accounts/a%3Fb%23c%20d%25"]
    await upstream.client.aclose()


async def test_the_openapi_documents_every_problem_and_names_operations_after_functions(
    admin: tuple[httpx.AsyncClient, list[httpx.Request]],
) -> None:
    client, _ = admin
    schema = (await client.get("/openapi.json")).json()
    operations = [
        (path, method, operation)
        for path, methods in schema["paths"].items()
        for method, operation in methods.items()
    ]
    ids = [operation["operationId"] for _, _, operation in operations]
    assert len(ids) == len(set(ids))
    assert all(id_.isidentifier() and "api_v1" not in id_ for id_ in ids), ids
    for path, method, operation in operations:
        responses = operation["responses"]
        for status in ("401", "422", "503"):
            content = responses[status]["content"]
            assert "application/problem+json" in content, (path, method, status)
        success = [s for s in responses if s.startswith("2")]
        assert success, (path, method)
    problem = schema["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "code", "errors"} <= problem["properties"].keys()


async def test_a_method_not_allowed_names_every_method_the_path_takes(
    admin: tuple[httpx.AsyncClient, list[httpx.Request]],
) -> None:
    client, _ = admin
    refused = await client.request("OPTIONS", "/api/v1/accounts")
    assert_problem(refused, 405)
    assert {m.strip() for m in refused.headers["Allow"].split(",")} == {"GET", "HEAD", "POST"}


async def test_dates_in_a_query_are_yyyy_mm_dd_text(
    admin: tuple[httpx.AsyncClient, list[httpx.Request]],
) -> None:
    client, forwarded = admin
    refused = await client.get("/api/v1/accounts/shop:12/usage", params={"to": "0"})
    assert_problem(refused, 422)
    assert forwarded == []


async def test_the_main_models_carry_examples_that_are_valid(
    admin: tuple[httpx.AsyncClient, list[httpx.Request]],
) -> None:
    client, _ = admin
    components = (await client.get("/openapi.json")).json()["components"]["schemas"]
    for name, model in (
        ("AccountView", AccountView),
        ("PaymentView", PaymentView),
        ("Problem", Problem),
        ("Token", Token),
        ("UserView", UserView),
        ("ApiKeyBody", ApiKeyBody),
    ):
        (example,) = components[name]["examples"]
        model.model_validate(example)
