"""API keys for programs (scoped, shown once, stored hashed, revocable, last use kept) and
Idempotency-Key on the POSTs that create something."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx
from gateway.domain import MONEY_ROUTES
from gateway.tables import api_keys
from sqlalchemy import select
from testkit.gateway import ADMIN_PASSWORD, gateway_on, public_client, sign_in

ACCOUNT = {"id": "shop:12", "balance": "1.00"}


class CountingServices:
    """Answers a top-up's two calls; counts the payments taken."""

    def __init__(self) -> None:
        self.payments = 0

    def answer(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/top-up-check"):
            return httpx.Response(200, json={})
        if path == "/internal/top-ups":
            self.payments += 1
            sent = json.loads(request.content)
            return httpx.Response(
                201,
                json={
                    "id": f"P{self.payments}",
                    "account_id": sent["account_id"],
                    "amount": sent["amount"],
                    "method": "cash",
                    "reference": sent["receipt"],
                    "operator": sent["operator"],
                    "status": "succeeded",
                    "created_at": "2026-01-01T00:00:00Z",
                },
            )
        if path == "/internal/meters":
            return httpx.Response(200, json={"items": [], "total": 0, "limit": 50, "offset": 0})
        if path == "/internal/meter-bindings":
            return httpx.Response(200, json={"items": []})
        return httpx.Response(404, json={"detail": "nothing here", "code": "not_found"})


async def test_an_api_key_is_shown_once_stored_hashed_scoped_and_revocable(
    tmp_path: Path,
) -> None:
    services = CountingServices()
    async with gateway_on(tmp_path, services.answer) as service:
        app = service.public_app()
        async with public_client(service, app=app) as admin:
            await sign_in(admin, "admin", ADMIN_PASSWORD)
            made = await admin.post(
                "/api/v1/api-keys", json={"name": "exporter", "scopes": ["read"]}
            )
            assert made.status_code == 201, made.text
            reader = made.json()
            money = (
                await admin.post(
                    "/api/v1/api-keys", json={"name": "till", "scopes": ["read", "money"]}
                )
            ).json()
            listed = (await admin.get("/api/v1/api-keys")).json()["items"]
            assert {item["name"] for item in listed} == {"exporter", "till"}
            assert all("key" not in item for item in listed)
        async with service.store.sessionmaker() as session:
            stored = (await session.execute(select(api_keys.c.key_hash))).scalars().all()
        assert hashlib.sha256(reader["key"].encode()).hexdigest() in stored
        assert reader["key"] not in stored

        async with public_client(service, app=app) as program:
            program.headers["X-API-Key"] = reader["key"]
            assert (await program.get("/api/v1/meters")).status_code == 200
            top_up = {"amount": "5.00", "receipt": "R1"}
            refused = await program.post("/api/v1/accounts/shop:12/top-ups", json=top_up)
            assert refused.status_code == 403
            assert (await program.get("/api/v1/users")).status_code == 403  # never an admin
        async with public_client(service, app=app) as till:
            till.headers["Authorization"] = f"Bearer {money['key']}"
            paid = await till.post("/api/v1/accounts/shop:12/top-ups", json=top_up)
            assert paid.status_code == 201, paid.text
            assert paid.json()["operator"] == f"key:{money['id']}"
            refused = await till.post("/api/v1/meters/M1/commands", json={"action": "trip"})
            assert refused.status_code == 403  # "operate" is not its scope
        async with public_client(service, app=app) as admin:
            await sign_in(admin, "admin", ADMIN_PASSWORD)
            listed = {i["id"]: i for i in (await admin.get("/api/v1/api-keys")).json()["items"]}
            assert listed[reader["id"]]["last_used_at"] is not None
            revoked = await admin.delete(f"/api/v1/api-keys/{reader['id']}")
            assert revoked.status_code == 204
        async with public_client(service, app=app) as program:
            program.headers["X-API-Key"] = reader["key"]
            assert (await program.get("/api/v1/meters")).status_code == 401
            program.headers["X-API-Key"] = "pk_forged_key"
            assert (await program.get("/api/v1/meters")).status_code == 401


async def test_an_idempotency_key_gives_the_first_answer_again_and_refuses_another_body(
    tmp_path: Path,
) -> None:
    services = CountingServices()
    async with gateway_on(tmp_path, services.answer) as service:
        app = service.public_app()
        async with public_client(service, app=app) as operator:
            await sign_in(operator, "admin", ADMIN_PASSWORD)
            key = {"Idempotency-Key": "till-7-0001"}
            body = {"amount": "5.00", "receipt": "R1"}
            first = await operator.post("/api/v1/accounts/shop:12/top-ups", json=body, headers=key)
            again = await operator.post("/api/v1/accounts/shop:12/top-ups", json=body, headers=key)
            assert (first.status_code, again.status_code) == (201, 201)
            assert again.json() == first.json()
            assert again.headers["Idempotent-Replayed"] == "true"
            assert services.payments == 1
            other = await operator.post(
                "/api/v1/accounts/shop:12/top-ups",
                json={**body, "amount": "6.00"},
                headers=key,
            )
            assert other.status_code == 409
            assert other.json()["code"] == "idempotency_key_reused"
            assert services.payments == 1
        async with public_client(service, app=app) as other_user:
            await service.operations.create_user(
                username="op2", password="another long secret", role="operator"
            )
            await sign_in(other_user, "op2", "another long secret")
            # Keys are per principal: another user's same key is a request of its own.
            mine = await other_user.post("/api/v1/accounts/shop:12/top-ups", json=body, headers=key)
            assert mine.status_code == 201
            assert services.payments == 2
    schema = app.openapi()
    parameters = schema["paths"]["/api/v1/accounts/{account_id}/top-ups"]["post"]["parameters"]
    assert "Idempotency-Key" in [p["name"] for p in parameters]


async def test_every_money_route_named_for_the_money_scope_exists(tmp_path: Path) -> None:
    async with gateway_on(tmp_path) as service:
        paths = set(service.public_app().openapi()["paths"])
    assert {f"/api/v1{route}" for route in MONEY_ROUTES} <= paths
