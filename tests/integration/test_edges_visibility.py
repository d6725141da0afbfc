"""Issue 19, who sees what, over the public API on both backends: a new tenant of a reused
meter sees only its own usage, a tenant user needs an account that exists, the audit log's
operator is the signed-in one, and reads-now and refused attempts are in the audit log."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from prepaid_common.bus.rabbit import RabbitBus
from prepaid_common.contracts import Envelope, ReadingV1
from pydantic import SecretStr
from standalone.app import Standalone
from standalone.settings import StandaloneSettings
from testkit import wait_until

SITE_ZONE = ZoneInfo("Asia/Shanghai")  # the site policy's default time zone

ADMIN = "edges-visibility-admin"


@pytest.fixture
async def site(
    backend: tuple[str, str], bus_prefix: str, tmp_path: Path
) -> AsyncIterator[tuple[Standalone, httpx.AsyncClient]]:
    database_url, amqp_url = backend
    product = Standalone(
        StandaloneSettings(
            data_dir=tmp_path / "data",
            database_url=database_url,
            amqp_url=amqp_url,
            bus_prefix=bus_prefix,
            simulator=False,
            collector_listen_port=0,
            token_secret=SecretStr("edges-visibility-secret-0123456789"),
            admin_password=SecretStr(ADMIN),
        )
    )
    await product.start()
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=product.app), base_url="http://test", timeout=30
    )
    login = await client.post("/api/v1/auth/token", data={"username": "admin", "password": ADMIN})
    client.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
    meters = [{"id": f"M{n}", "unit_id": n, "profile": "reference-prepaid"} for n in (1, 2)]
    dtu = {"id": "D1", "name": "Block A", "host": "127.0.0.1", "port": 9, "meters": meters}
    assert (await client.post("/api/v1/dtus", json=dtu)).status_code == 201
    yield product, client
    await client.aclose()
    await product.stop()
    if isinstance(product.bus, RabbitBus):
        await product.bus.delete_topology()


async def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


async def user(
    api: httpx.AsyncClient, name: str, role: str, accounts: list[str] | None = None
) -> dict[str, str]:
    body = {"username": name, "password": f"{name} has a long pass", "role": role}
    if accounts is not None:
        body["account_ids"] = accounts  # type: ignore[assignment]
    await ok(await api.post("/api/v1/users", json=body), 201)
    login = await api.post(
        "/api/v1/auth/token", data={"username": name, "password": body["password"]}
    )
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


async def audit_log(api: httpx.AsyncClient) -> list[dict[str, Any]]:
    page = await ok(await api.get("/api/v1/audit", params={"limit": 200}))
    items: list[dict[str, Any]] = page["items"]
    return items


async def read(product: Standalone, meter_id: str, at: datetime, kwh: str) -> None:
    reading = ReadingV1(meter_id=meter_id, dtu_id="D1", read_at=at, energy_kwh=Decimal(kwh))
    await product.bus.publish(Envelope.wrap(reading, producer="test"))


async def test_a_tenant_user_needs_an_account_that_exists(
    site: tuple[Standalone, httpx.AsyncClient],
) -> None:
    _, api = site
    body = {"username": "early", "password": "early has a long pass", "role": "tenant"}
    missing = await api.post("/api/v1/users", json={**body, "account_ids": ["SHOP-9"]})
    # Linked to an account nobody opened yet, it would see whoever opens it.
    assert missing.status_code == 404, missing.text
    assert "SHOP-9" in missing.json()["detail"]
    users = (await ok(await api.get("/api/v1/users")))["items"]
    assert "early" not in [u["username"] for u in users]
    await ok(
        await api.post(
            "/api/v1/accounts", json={"id": "SHOP-9", "name": "Shop 9", "price_per_kwh": "1"}
        ),
        201,
    )
    await ok(await api.post("/api/v1/users", json={**body, "account_ids": ["SHOP-9"]}), 201)


async def test_the_audit_names_the_signed_in_operator_not_the_bodys(
    site: tuple[Standalone, httpx.AsyncClient],
) -> None:
    _, api = site
    cashier = await user(api, "cashier-wang", "operator")
    await ok(
        await api.post(
            "/api/v1/accounts",
            json={"id": "A", "name": "A", "price_per_kwh": "1", "groups": ["floor:3"]},
        ),
        201,
    )
    forged = {"scope": "group", "target": "floor:3", "reason": "cold store", "operator": "admin"}
    await ok(await api.post("/api/v1/holds", json=forged, headers=cashier), 201)
    arrears = {"amount": "3.00", "key": "OLD", "reason": "old bill", "operator": "admin"}
    await ok(await api.post("/api/v1/accounts/A/arrears", json=arrears, headers=cashier), 201)
    entries = {e["action"]: e for e in await audit_log(api)}
    for action in ("hold.place", "account.arrears"):
        assert entries[action]["actor"] == "cashier-wang"
        assert entries[action]["detail"]["operator"] == "cashier-wang"
    holds = (await ok(await api.get("/api/v1/holds")))["items"]
    assert [h["operator"] for h in holds] == ["cashier-wang"]


async def test_reads_now_and_refused_attempts_are_audited(
    site: tuple[Standalone, httpx.AsyncClient],
) -> None:
    _, api = site
    await ok(
        await api.post("/api/v1/accounts", json={"id": "A", "name": "A", "price_per_kwh": "1"}), 201
    )
    tenant = await user(api, "tenant-a", "tenant", ["A"])
    # The DTU does not answer: the read fails, and the attempt is on record all the same.
    failed = await api.post("/api/v1/meters/M1/read")
    assert failed.status_code >= 400
    refused = await api.post(
        "/api/v1/holds", json={"scope": "global", "reason": "let me"}, headers=tenant
    )
    assert refused.status_code == 403
    assert (await api.put("/api/v1/policy", json={}, headers=tenant)).status_code == 403
    log = await audit_log(api)
    reads = [e for e in log if e["action"] == "meter.read"]
    assert [(e["actor"], e["target"]) for e in reads] == [("admin", "M1")]
    assert reads[0]["detail"]["outcome"] != "read"
    refusals = [e for e in log if e["action"] == "access.refused"]
    assert {(e["actor"], e["target"]) for e in refusals} == {
        ("tenant-a", "POST /api/v1/holds"),
        ("tenant-a", "PUT /api/v1/policy"),
    }


async def test_a_new_tenant_of_a_reused_meter_sees_only_its_own_usage(
    site: tuple[Standalone, httpx.AsyncClient],
) -> None:
    product, api = site
    for account_id in ("OLD", "NEW"):
        body = {"id": account_id, "name": account_id, "price_per_kwh": "1.00"}
        await ok(await api.post("/api/v1/accounts", json=body), 201)
        top_up = {"amount": "100.00", "receipt": f"R-{account_id}"}
        await ok(await api.post(f"/api/v1/accounts/{account_id}/top-ups", json=top_up), 201)
    await ok(await api.post("/api/v1/accounts/OLD/meters", json={"meter_id": "M1"}), 201)
    now = datetime.now(UTC)
    await read(product, "M1", now - timedelta(days=3), "100.000")
    await read(product, "M1", now - timedelta(days=2), "140.000")

    async def old_usage() -> bool:
        usage = await ok(await api.get("/api/v1/accounts/OLD/usage"))
        return bool(usage["items"])

    await wait_until(old_usage)
    # The old tenant leaves: M1 is swapped out (replaced by M2), then given to the new one.
    swap = {"new_meter_id": "M2", "old_final_kwh": "140.000", "new_start_kwh": "0.000"}
    await ok(await api.post("/api/v1/meters/M1/swap", json=swap))
    await ok(await api.post("/api/v1/accounts/NEW/meters", json={"meter_id": "M1"}), 201)
    # Both on the site's local day of the binding (Asia/Shanghai by default): a tenant sees
    # usage from that day on, and "20 minutes ago" just after local midnight is the day before.
    midnight = now.astimezone(SITE_ZONE).replace(hour=0, minute=0, second=0, microsecond=0)
    first = max(now - timedelta(minutes=20), midnight + timedelta(seconds=1))
    await read(product, "M1", first, "140.000")
    await read(product, "M1", first + (now - first) / 2, "145.000")

    async def new_usage() -> bool:
        usage = await ok(await api.get("/api/v1/accounts/NEW/usage"))
        return bool(usage["items"])

    await wait_until(new_usage)
    tenant = await user(api, "tenant-new", "tenant", ["NEW"])
    seen = await ok(await api.get("/api/v1/meters/M1/usage", headers=tenant))
    assert [Decimal(p["metered_kwh"]) for p in seen["items"]] == [Decimal("5")]
    monthly = await ok(
        await api.get("/api/v1/meters/M1/usage", params={"granularity": "month"}, headers=tenant)
    )
    assert sum(Decimal(p["metered_kwh"]) for p in monthly["items"]) == Decimal("5")
    # Staff still see the meter's whole history.
    everything = await ok(await api.get("/api/v1/meters/M1/usage"))
    assert sum(Decimal(p["metered_kwh"]) for p in everything["items"]) == Decimal("45")
