"""The public REST API over the billing engine: tariffs, terms, holds, shedding, money,
reports, roles and the audit log, through the same wiring as ``make run``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from prepaid_common.bus.rabbit import RabbitBus
from pydantic import SecretStr
from standalone.app import Standalone
from standalone.settings import StandaloneSettings


@pytest.fixture
async def api(
    backend: tuple[str, str], bus_prefix: str, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    database_url, amqp_url = backend
    product = Standalone(
        StandaloneSettings(
            data_dir=tmp_path / "data",
            database_url=database_url,
            amqp_url=amqp_url,
            bus_prefix=bus_prefix,
            simulator=False,
            collector_listen_port=0,
            token_secret=SecretStr("public-api-test-secret-0123456789"),
            admin_password=SecretStr("public-api-admin"),
        )
    )
    await product.start()
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=product.app), base_url="http://test", timeout=30
    )
    token = (
        await client.post(
            "/api/v1/auth/token", data={"username": "admin", "password": "public-api-admin"}
        )
    ).json()["access_token"]
    client.headers["Authorization"] = f"Bearer {token}"
    # A DTU nobody answers on: the meters exist, and stay offline.
    response = await client.post(
        "/api/v1/dtus",
        json={
            "id": "D1",
            "name": "Block A",
            "host": "127.0.0.1",
            "port": 9,
            "meters": [
                {"id": f"M{n}", "unit_id": n, "profile": "reference-prepaid"} for n in (1, 2, 3)
            ],
        },
    )
    assert response.status_code == 201, response.text
    yield client
    await client.aclose()
    await product.stop()
    if isinstance(product.bus, RabbitBus):
        await product.bus.delete_topology()


async def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


async def wait_for_balance(api: httpx.AsyncClient, account: str, expected: str) -> None:
    from testkit import wait_until

    async def settled() -> bool:
        body = (await api.get(f"/api/v1/accounts/{account}")).json()
        return Decimal(body["balance"]) == Decimal(expected)

    await wait_until(settled)


async def test_tariffs_accounts_and_money_through_the_api(api: httpx.AsyncClient) -> None:
    tariff = await ok(
        await api.post(
            "/api/v1/tariffs",
            json={
                "id": "mall-tou",
                "name": "Mall TOU",
                "definition": {
                    "kind": "tou",
                    "period_prices": {
                        "sharp": "1.6",
                        "peak": "1.3",
                        "flat": "0.9",
                        "valley": "0.4",
                    },
                    "daily_charge": "0.50",
                },
            },
        ),
        201,
    )
    assert tariff["id"] == "mall-tou"
    assert len(tariff["versions"]) == 1
    bad = await api.post(
        "/api/v1/tariffs",
        json={"id": "x", "name": "x", "definition": {"kind": "tou", "price_per_kwh": "1"}},
    )
    assert bad.status_code == 422
    assert "period_prices" in bad.json()["detail"]

    account = await ok(
        await api.post(
            "/api/v1/accounts",
            json={
                "id": "SHOP-1",
                "name": "Tea shop",
                "tariff_id": "mall-tou",
                "balance_cap": "500.00",
                "groups": ["building:A", "class:food"],
            },
        ),
        201,
    )
    assert account["tariff_id"] == "mall-tou"
    assert account["groups"] == ["building:A", "class:food"]
    assert (
        await api.post("/api/v1/accounts", json={"id": "X", "name": "x", "tariff_id": "nope"})
    ).status_code == 404

    await ok(
        await api.post(
            "/api/v1/accounts/SHOP-1/top-ups", json={"amount": "450.00", "receipt": "R-1"}
        ),
        201,
    )
    await wait_for_balance(api, "SHOP-1", "450.00")
    over_cap = await api.post(
        "/api/v1/accounts/SHOP-1/top-ups", json={"amount": "60.00", "receipt": "R-2"}
    )
    assert over_cap.status_code == 409
    assert "cap" in over_cap.json()["detail"]
    payments = await ok(await api.get("/api/v1/accounts/SHOP-1/payments"))
    assert [p["reference"] for p in payments["items"]] == ["R-1"]

    await ok(await api.post("/api/v1/accounts/SHOP-1/meters", json={"meter_id": "M1"}), 201)
    changed = await ok(
        await api.patch(
            "/api/v1/accounts/SHOP-1", json={"warning_line": "20.00", "protected": True}
        )
    )
    assert (changed["warning_line"], changed["protected"]) == ("20.00", True)

    refund = await ok(
        await api.post(
            "/api/v1/accounts/SHOP-1/refunds",
            json={"amount": "50.00", "key": "REF-1", "reason": "closing the shop"},
        ),
        201,
    )
    assert Decimal((await api.get("/api/v1/accounts/SHOP-1")).json()["balance"]) == Decimal(
        "400.00"
    )
    await ok(
        await api.post(
            f"/api/v1/transactions/{refund['transaction_id']}/reversal",
            json={"reason": "refund keyed twice"},
        ),
        201,
    )
    again = await api.post(
        f"/api/v1/transactions/{refund['transaction_id']}/reversal", json={"reason": "again"}
    )
    assert again.status_code == 409
    ledger = await ok(await api.get("/api/v1/accounts/SHOP-1/ledger"))
    assert [line["kind"] for line in ledger["items"]][:2] == ["reversal", "refund"]
    assert ledger["items"][0]["operator"] == "admin"

    await ok(
        await api.post(
            "/api/v1/accounts/SHOP-1/arrears",
            json={"amount": "15.00", "key": "OLD-2025", "reason": "unpaid 2025 bill"},
        ),
        201,
    )
    dunning = await ok(await api.get("/api/v1/dunning"))
    assert [(d["account_id"], d["amount_due"]) for d in dunning["items"]] == [("SHOP-1", "15.00")]
    statement = await ok(await api.get("/api/v1/accounts/SHOP-1/statements/2026-01"))
    assert statement["month"] == "2026-01"
    assert (await api.get("/api/v1/accounts/SHOP-1/statements/2026-13")).status_code == 422
    usage = await ok(await api.get("/api/v1/meters/M1/usage", params={"granularity": "month"}))
    assert usage["items"] == []

    audit = await ok(await api.get("/api/v1/audit", params={"limit": 100}))
    actions = {entry["action"] for entry in audit["items"]}
    assert {
        "tariff.define",
        "account.open",
        "account.top_up",
        "meter.bind",
        "account.change",
        "account.refund",
        "transaction.reverse",
        "account.arrears",
    } <= actions


async def test_holds_sheds_and_policy_through_the_api(api: httpx.AsyncClient) -> None:
    for account, meter, protected in (("A", "M1", False), ("B", "M2", True), ("C", "M3", False)):
        await ok(
            await api.post(
                "/api/v1/accounts",
                json={
                    "id": account,
                    "name": account,
                    "price_per_kwh": "1.2",
                    "protected": protected,
                    "groups": ["floor:3"] if account != "C" else ["floor:4"],
                },
            ),
            201,
        )
        await ok(
            await api.post(
                f"/api/v1/accounts/{account}/top-ups",
                json={"amount": "20.00", "receipt": f"OPEN-{account}"},
            ),
            201,
        )
        await wait_for_balance(api, account, "20.00")
        await ok(
            await api.post(f"/api/v1/accounts/{account}/meters", json={"meter_id": meter}), 201
        )

    shed = await ok(
        await api.post("/api/v1/sheds", json={"group": "floor:3", "reason": "grid limit"}), 201
    )
    supply = {a: (await api.get(f"/api/v1/accounts/{a}")).json()["supply"] for a in "ABC"}
    assert supply == {"A": "off", "B": "on", "C": "on"}
    events = await ok(await api.get("/api/v1/meters/M1/supply-events"))
    assert events["items"][0]["action"] == "trip"
    assert "floor:3" in events["items"][0]["reason"]
    assert (await api.delete(f"/api/v1/sheds/{shed['id']}")).status_code == 204
    assert (await api.get("/api/v1/accounts/A")).json()["supply"] == "on"

    hold = await ok(
        await api.post(
            "/api/v1/holds", json={"scope": "meter", "target": "M3", "reason": "cold store"}
        ),
        201,
    )
    assert [h["id"] for h in (await ok(await api.get("/api/v1/holds")))["items"]] == [hold["id"]]
    assert (await api.delete(f"/api/v1/holds/{hold['id']}")).status_code == 204
    assert (await api.delete("/api/v1/holds/no-such-hold")).status_code == 404

    policy = await ok(
        await api.put(
            "/api/v1/policy",
            json={
                "timezone": "Asia/Shanghai",
                "friendly_windows": [{"start": "22:00", "end": "07:00"}],
                "holidays": ["2026-10-01"],
            },
        )
    )
    assert policy["friendly_windows"] == [{"start": "22:00:00", "end": "07:00:00"}]
    assert (await ok(await api.get("/api/v1/policy")))["holidays"] == ["2026-10-01"]
    assert (
        await api.put("/api/v1/policy", json={"friendly_windows": [{"start": "25:00"}]})
    ).status_code == 422


async def test_roles_guard_money_and_configuration(api: httpx.AsyncClient) -> None:
    await ok(
        await api.post(
            "/api/v1/users",
            json={"username": "cashier", "password": "cashier-pass", "role": "operator"},
        ),
        201,
    )
    login = await api.post(
        "/api/v1/auth/token", data={"username": "cashier", "password": "cashier-pass"}
    )
    operator = {"Authorization": f"Bearer {login.json()['access_token']}"}
    await ok(
        await api.post("/api/v1/accounts", json={"id": "Z", "name": "Z", "price_per_kwh": "1"}),
        201,
    )
    assert (
        await api.post(
            "/api/v1/accounts/Z/refunds",
            json={"amount": "1.00", "key": "k", "reason": "r"},
            headers=operator,
        )
    ).status_code == 403
    assert (
        await api.post(
            "/api/v1/tariffs",
            json={"id": "t", "name": "t", "definition": {"kind": "flat", "price_per_kwh": "1"}},
            headers=operator,
        )
    ).status_code == 403
    assert (await api.put("/api/v1/policy", json={}, headers=operator)).status_code == 403
    assert (await api.get("/api/v1/dunning", headers=operator)).status_code == 200
