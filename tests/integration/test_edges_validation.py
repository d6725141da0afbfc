"""Issue 19, validation: holds and sheds name things that exist, holds end in the future,
and ``GET /holds`` lists only the holds in force; on both backends, over the public API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prepaid_common.bus.rabbit import RabbitBus
from pydantic import SecretStr
from standalone.app import Standalone
from standalone.settings import StandaloneSettings
from testkit import wait_until


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
            token_secret=SecretStr("edges-validation-secret-0123456789"),
            admin_password=SecretStr("edges-admin"),
        )
    )
    await product.start()
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=product.app), base_url="http://test", timeout=30
    )
    token = (
        await client.post(
            "/api/v1/auth/token", data={"username": "admin", "password": "edges-admin"}
        )
    ).json()["access_token"]
    client.headers["Authorization"] = f"Bearer {token}"
    # A DTU nobody answers on: its meters exist, offline.
    response = await client.post(
        "/api/v1/dtus",
        json={
            "id": "D1",
            "name": "Block A",
            "host": "127.0.0.1",
            "port": 9,
            "meters": [{"id": "M1", "unit_id": 1, "profile": "reference-prepaid"}],
        },
    )
    assert response.status_code == 201, response.text
    body = {"id": "A", "name": "A", "price_per_kwh": "1.00", "groups": ["floor:3"]}
    assert (await client.post("/api/v1/accounts", json=body)).status_code == 201
    yield client
    await client.aclose()
    await product.stop()
    if isinstance(product.bus, RabbitBus):
        await product.bus.delete_topology()


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    found: dict[str, Any] = response.json()
    return found


async def test_a_hold_for_an_unknown_meter_or_group_is_refused(api: httpx.AsyncClient) -> None:
    unknown_meter = {"scope": "meter", "target": "NO-SUCH-METER", "reason": "typo"}
    problem(await api.post("/api/v1/holds", json=unknown_meter), 404)
    odd_meter = {"scope": "meter", "target": "../internal/x", "reason": "typo"}
    problem(await api.post("/api/v1/holds", json=odd_meter), 404)
    unknown_group = {"scope": "group", "target": "floor:33", "reason": "typo"}
    problem(await api.post("/api/v1/holds", json=unknown_group), 404)
    assert (await api.get("/api/v1/holds")).json()["items"] == []
    # What exists is held: a registered meter (bound or not) and a group with an account.
    for scope, target in (("meter", "M1"), ("group", "floor:3")):
        body = {"scope": scope, "target": target, "reason": "cold store"}
        assert (await api.post("/api/v1/holds", json=body)).status_code == 201
    assert len((await api.get("/api/v1/holds")).json()["items"]) == 2


async def test_a_shed_of_an_unknown_group_is_refused(api: httpx.AsyncClient) -> None:
    problem(await api.post("/api/v1/sheds", json={"group": "floor:33", "reason": "typo"}), 404)
    assert (await api.get("/api/v1/sheds")).json()["items"] == []
    response = await api.post("/api/v1/sheds", json={"group": "floor:3", "reason": "grid"})
    assert response.status_code == 201, response.text


async def test_a_hold_ending_in_the_past_is_refused(api: httpx.AsyncClient) -> None:
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    body = {"scope": "global", "until": past, "reason": "too late"}
    assert "passed" in problem(await api.post("/api/v1/holds", json=body), 422)["detail"]
    naive = {"scope": "global", "until": "2999-01-01T00:00:00", "reason": "no zone"}
    problem(await api.post("/api/v1/holds", json=naive), 422)
    assert (await api.get("/api/v1/holds")).json()["items"] == []


async def test_the_holds_in_force_leave_out_expired_ones(api: httpx.AsyncClient) -> None:
    lasting = {"scope": "meter", "target": "M1", "reason": "cold store"}
    kept = (await api.post("/api/v1/holds", json=lasting)).json()["id"]
    # Ends 3 s after it is sent (a loaded CI machine took over a second for the post before).
    soon = (datetime.now(UTC) + timedelta(seconds=3)).isoformat()
    brief = {"scope": "global", "until": soon, "reason": "a short visit"}
    assert (await api.post("/api/v1/holds", json=brief)).status_code == 201

    async def only_the_lasting_one() -> bool:
        items = (await api.get("/api/v1/holds")).json()["items"]
        return [hold["id"] for hold in items] == [kept]

    await wait_until(only_the_lasting_one, timeout=15)


async def test_a_bill_day_that_is_not_a_calendar_date_is_refused(api: httpx.AsyncClient) -> None:
    # Pydantic alone reads "0" as 1970-01-01 (a Unix time) and would check that day's bill.
    for day in ("0", "1700000000", "2026-13-01", "2026-12-07T00:00:00"):
        found = problem(await api.post(f"/api/v1/payment-bills/wechatpay/{day}"), 422)
        assert "YYYY-MM-DD" in found["detail"] or "date" in found["detail"], found


async def test_a_flag_sent_as_a_number_is_refused_and_nothing_changes(
    api: httpx.AsyncClient,
) -> None:
    # Pydantic alone reads 0 as False: an unprotected account that a client meant otherwise.
    found = problem(await api.patch("/api/v1/accounts/A", json={"protected": 1}), 422)
    assert "protected" in found["detail"], found
    assert (await api.get("/api/v1/accounts/A")).json()["protected"] is False
    opened = {"id": "B", "name": "B", "price_per_kwh": "1.00", "protected": 0}
    problem(await api.post("/api/v1/accounts", json=opened), 422)
    changed = await api.patch("/api/v1/accounts/A", json={"protected": True})
    assert changed.status_code == 200, changed.text
    assert changed.json()["protected"] is True
