"""The site office over the public API on both backends (issue 19): move-out and transfer
each one audited operation, the readings history with paging and who may see it, tenants
found by building, floor, room, name and phone, the cashier's shift close reconciled with
the ledger, postpaid terms with a bill overdue (late fees and the cut), and common-area
apportionment by area and by consumption."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from prepaid_common.bus.rabbit import RabbitBus
from prepaid_common.contracts import Envelope, ReadingV1, utcnow
from pydantic import SecretStr
from standalone.app import Standalone
from standalone.settings import StandaloneSettings
from testkit import wait_until

ADMIN = "site-office-admin"
SHANGHAI = ZoneInfo("Asia/Shanghai")
METERS = [f"M{n}" for n in range(1, 10)]


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
            token_secret=SecretStr("site-office-secret-0123456789-0123"),
            admin_password=SecretStr(ADMIN),
        )
    )
    await product.start()
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=product.app), base_url="http://test", timeout=30
    )
    login = await client.post("/api/v1/auth/token", data={"username": "admin", "password": ADMIN})
    client.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
    meters = [
        {"id": meter, "unit_id": n, "profile": "reference-prepaid"}
        for n, meter in enumerate(METERS, start=1)
    ]
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


async def open_account(api: httpx.AsyncClient, account_id: str, **terms: Any) -> None:
    body = {"id": account_id, "name": account_id, "price_per_kwh": "1.00", **terms}
    await ok(await api.post("/api/v1/accounts", json=body), 201)


async def bind(api: httpx.AsyncClient, account_id: str, meter_id: str) -> None:
    await ok(
        await api.post(f"/api/v1/accounts/{account_id}/meters", json={"meter_id": meter_id}), 201
    )


async def top_up(api: httpx.AsyncClient, account_id: str, amount: str, receipt: str) -> None:
    await ok(
        await api.post(
            f"/api/v1/accounts/{account_id}/top-ups", json={"amount": amount, "receipt": receipt}
        ),
        201,
    )


async def balance(api: httpx.AsyncClient, account_id: str) -> Decimal:
    body = await ok(await api.get(f"/api/v1/accounts/{account_id}"))
    return Decimal(body["balance"])


async def settle(api: httpx.AsyncClient, account_id: str, expected: str) -> None:
    async def there() -> bool:
        return await balance(api, account_id) == Decimal(expected)

    await wait_until(there, timeout=30)


async def read(product: Standalone, meter_id: str, at: datetime, kwh: str) -> None:
    reading = ReadingV1(meter_id=meter_id, dtu_id="D1", read_at=at, energy_kwh=Decimal(kwh))
    await product.bus.publish(Envelope.wrap(reading, producer="collector"))


async def ledger_kinds(api: httpx.AsyncClient, account_id: str) -> list[dict[str, Any]]:
    page = await ok(await api.get(f"/api/v1/accounts/{account_id}/ledger", params={"limit": 100}))
    lines: list[dict[str, Any]] = page["items"]
    return lines


async def test_move_out_settles_releases_and_closes_once(
    site: tuple[Standalone, httpx.AsyncClient],
) -> None:
    product, api = site
    await open_account(api, "A")
    await bind(api, "A", "M1")
    await top_up(api, "A", "100.00", "R-A1")
    await settle(api, "A", "100.00")
    now = utcnow().replace(microsecond=0)
    await read(product, "M1", now - timedelta(minutes=10), "10.000")
    await read(product, "M1", now - timedelta(minutes=5), "25.000")
    await settle(api, "A", "85.00")

    body = {
        "final_readings": {"M1": "30.000"},
        "settlement": "refund",
        "key": "out-A",
        "reason": "lease ended",
        "operator": "somebody-else",
    }
    closed = await ok(await api.post("/api/v1/accounts/A/move-out", json=body))
    assert closed["kind"] == "move_out"
    assert closed["final_charges"] == [{"meter_id": "M1", "final_kwh": "30.000", "charge": "5.00"}]
    assert Decimal(closed["refunded"]) == Decimal("80.00")
    assert Decimal(closed["balance_after"]) == 0
    assert closed["meters_released"] == ["M1"]
    assert closed["operator"] == "admin"  # whoever holds the token, not the body
    # The same key replays the first answer; another move of a closed account conflicts.
    assert await ok(await api.post("/api/v1/accounts/A/move-out", json=body)) == closed
    again = await api.post("/api/v1/accounts/A/move-out", json={**body, "key": "out-A2"})
    assert again.status_code == 409
    # Nothing more can be paid in; the meter is free for the next tenant.
    refused = await api.post(
        "/api/v1/accounts/A/top-ups", json={"amount": "10.00", "receipt": "R-A2"}
    )
    assert refused.status_code == 409, refused.text
    account = await ok(await api.get("/api/v1/accounts/A"))
    assert account["meter_ids"] == []
    kinds = [
        (line["kind"], line["amount"], line["operator"]) for line in await ledger_kinds(api, "A")
    ]
    assert ("refund", "-80.00", "admin") in kinds
    history = await ok(await api.get("/api/v1/meters/M1/history"))
    assert [event["event"] for event in history["items"]][-1] == "unbound"
    audit = await ok(await api.get("/api/v1/audit", params={"action": "account.move_out"}))
    assert any(row["target"] == "A" for row in audit["items"])
    # A new tenant takes the meter: billed from the next reading on, nothing of A's.
    await open_account(api, "A-next")
    await bind(api, "A-next", "M1")
    await top_up(api, "A-next", "20.00", "R-N1")
    await read(product, "M1", now + timedelta(minutes=1), "31.000")
    await read(product, "M1", now + timedelta(minutes=2), "33.000")
    await settle(api, "A-next", "18.00")
    # Found among tenants only when closed accounts are asked for.
    found = await ok(await api.get("/api/v1/tenants", params={"q": "A"}))
    assert [row["account_id"] for row in found["items"]] == ["A-next"]
    found = await ok(await api.get("/api/v1/tenants", params={"q": "A", "include_closed": True}))
    assert {row["account_id"]: row["closed_at"] is not None for row in found["items"]} == {
        "A": True,
        "A-next": False,
    }


async def test_transfer_hands_the_premises_over_with_the_credit(
    site: tuple[Standalone, httpx.AsyncClient],
) -> None:
    product, api = site
    await open_account(api, "C", groups=["building:B"])
    await bind(api, "C", "M2")
    await top_up(api, "C", "60.00", "R-C1")
    now = utcnow().replace(microsecond=0)
    await read(product, "M2", now - timedelta(minutes=10), "100.000")
    await read(product, "M2", now - timedelta(minutes=5), "110.000")
    await settle(api, "C", "50.00")
    body = {
        "new_account": {
            "id": "D",
            "name": "New bakery",
            "profile": {"tenant_name": "Wang Li", "phone": "13800138000", "room": "B-101"},
        },
        "balance": "carry",
        "key": "tr-C",
        "reason": "shop sold",
    }
    moved = await ok(await api.post("/api/v1/accounts/C/transfer", json=body))
    assert moved["successor"] == "D"
    assert Decimal(moved["carried"]) == Decimal("50.00")
    assert Decimal(moved["balance_after"]) == 0
    new = await ok(await api.get("/api/v1/accounts/D"))
    assert new["meter_ids"] == ["M2"]
    assert Decimal(new["balance"]) == Decimal("50.00")
    assert new["groups"] == ["building:B"]
    profile = await ok(await api.get("/api/v1/accounts/D/profile"))
    assert profile["tenant_name"] == "Wang Li"
    # Energy after the handover is the new tenant's, from the final register on.
    await read(product, "M2", now + timedelta(minutes=1), "113.000")
    await settle(api, "D", "47.00")
    assert await balance(api, "C") == 0
    assert await ok(await api.post("/api/v1/accounts/C/transfer", json=body)) == moved
    clash = await api.post(
        "/api/v1/accounts/C/transfer",
        json={**body, "key": "tr-C2", "new_account": {"id": "E", "name": "e"}},
    )
    assert clash.status_code == 409
    # A tenant of the new account sees M2's readings since it became theirs, none before.
    await ok(
        await api.post(
            "/api/v1/users",
            json={
                "username": "bakery",
                "password": "bakery-pass-1",
                "role": "tenant",
                "account_ids": ["D"],
            },
        ),
        201,
    )
    tenant = httpx.AsyncClient(transport=api._transport, base_url="http://test")
    login = await tenant.post(
        "/api/v1/auth/token", data={"username": "bakery", "password": "bakery-pass-1"}
    )
    tenant.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
    own = await ok(await tenant.get("/api/v1/meters/M2/readings"))
    assert [row["energy_kwh"] for row in own["items"]] == ["113.000"]
    staff = await ok(await api.get("/api/v1/meters/M2/readings"))
    assert [row["energy_kwh"] for row in staff["items"]] == ["113.000", "110.000", "100.000"]
    assert (await tenant.get("/api/v1/meters/M1/readings")).status_code == 404
    await tenant.aclose()


async def test_readings_history_pages_and_tenants_are_found_by_place(
    site: tuple[Standalone, httpx.AsyncClient],
) -> None:
    product, api = site
    for account_id, room, phone in (("F1", "301", "13900001111"), ("F2", "302", "13900002222")):
        await open_account(api, account_id)
        await ok(
            await api.put(
                f"/api/v1/accounts/{account_id}/profile",
                json={
                    "tenant_name": f"Tenant {room}",
                    "phone": phone,
                    "building": "Tower 1",
                    "floor": "3",
                    "room": room,
                    "area_m2": "45.50",
                },
            )
        )
    found = await ok(await api.get("/api/v1/tenants", params={"building": "Tower 1", "floor": "3"}))
    assert [row["account_id"] for row in found["items"]] == ["F1", "F2"]
    assert found["items"][0]["profile"]["area_m2"] == "45.50"
    by_phone = await ok(await api.get("/api/v1/tenants", params={"q": "0002222"}))
    assert [row["account_id"] for row in by_phone["items"]] == ["F2"]
    by_room = await ok(await api.get("/api/v1/tenants", params={"room": "301"}))
    assert [row["account_id"] for row in by_room["items"]] == ["F1"]
    # LIKE's wildcards are plain characters in a search.
    assert (await ok(await api.get("/api/v1/tenants", params={"q": "%"})))["items"] == []
    bad = await api.put("/api/v1/accounts/F1/profile", json={"phone": "call me"})
    assert bad.status_code == 422
    assert (await api.put("/api/v1/accounts/nobody/profile", json={})).status_code == 404

    await bind(api, "F1", "M3")
    start = utcnow().replace(microsecond=0) - timedelta(hours=1)
    for n in range(5):
        await read(product, "M3", start + timedelta(minutes=n), f"{n}.000")

    async def all_read() -> bool:
        page = await ok(await api.get("/api/v1/meters/M3/readings", params={"limit": 10}))
        return len(page["items"]) == 5

    await wait_until(all_read, timeout=30)
    first = await ok(await api.get("/api/v1/meters/M3/readings", params={"limit": 2}))
    assert [row["energy_kwh"] for row in first["items"]] == ["4.000", "3.000"]
    second = await ok(
        await api.get(
            "/api/v1/meters/M3/readings", params={"limit": 2, "before": first["next_before"]}
        )
    )
    assert [row["energy_kwh"] for row in second["items"]] == ["2.000", "1.000"]
    last = await ok(
        await api.get(
            "/api/v1/meters/M3/readings", params={"limit": 2, "before": second["next_before"]}
        )
    )
    assert [row["energy_kwh"] for row in last["items"]] == ["0.000"]
    assert last["next_before"] is None


async def test_cashier_shift_close_reconciles_with_the_ledger(
    site: tuple[Standalone, httpx.AsyncClient],
) -> None:
    _, api = site
    await open_account(api, "G")
    await ok(
        await api.post(
            "/api/v1/users",
            json={"username": "cashier1", "password": "cashier-pass-1", "role": "operator"},
        ),
        201,
    )
    cashier = httpx.AsyncClient(transport=api._transport, base_url="http://test")
    login = await cashier.post(
        "/api/v1/auth/token", data={"username": "cashier1", "password": "cashier-pass-1"}
    )
    cashier.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
    await top_up(cashier, "G", "50.00", "S-1")
    await top_up(cashier, "G", "30.00", "S-2")
    await top_up(api, "G", "7.00", "S-admin")  # the admin's drawer, not the cashier's
    await settle(api, "G", "87.00")

    async def counted() -> bool:
        shift = await ok(await cashier.get("/api/v1/cashier-shifts/current"))
        return bool(shift["top_ups"] == 2)

    await wait_until(counted, timeout=30)
    open_shift = await ok(await cashier.get("/api/v1/cashier-shifts/current"))
    assert Decimal(open_shift["cash_in"]) == Decimal("80.00")
    assert Decimal(open_shift["expected_cash"]) == Decimal("80.00")
    closed = await ok(
        await cashier.post(
            "/api/v1/cashier-shifts", json={"counted_cash": "75.00", "note": "short"}
        ),
        201,
    )
    assert closed["cashier"] == "cashier1"
    assert Decimal(closed["difference"]) == Decimal("-5.00")
    assert closed["id"] is not None
    # The next shift starts empty and counts what comes after the close.
    fresh = await ok(await cashier.get("/api/v1/cashier-shifts/current"))
    assert fresh["top_ups"] == 0
    assert fresh["opened_at"] is not None
    await top_up(cashier, "G", "20.00", "S-3")
    await settle(api, "G", "107.00")
    later = await ok(await cashier.get("/api/v1/cashier-shifts/current"))
    assert Decimal(later["cash_in"]) == Decimal("20.00")
    listed = await ok(await api.get("/api/v1/cashier-shifts", params={"cashier": "cashier1"}))
    assert [Decimal(s["counted_cash"]) for s in listed["items"]] == [Decimal("75.00")]
    assert (
        await cashier.post("/api/v1/cashier-shifts", json={"counted_cash": "-1"})
    ).status_code == 422
    await cashier.aclose()


async def test_postpaid_bill_overdue_costs_late_fees_and_cuts_until_paid(
    site: tuple[Standalone, httpx.AsyncClient],
) -> None:
    product, api = site
    await open_account(api, "P", mode="postpaid")
    await bind(api, "P", "M4")
    terms = {"due_day": 10, "grace_days": 3, "late_fee_rate": "0.001", "cut_when_overdue": True}
    assert (await api.put("/api/v1/accounts/A-none/postpaid-terms", json=terms)).status_code == 404
    await ok(await api.put("/api/v1/accounts/P/postpaid-terms", json=terms))
    now = utcnow().replace(microsecond=0)
    await read(product, "M4", now - timedelta(minutes=10), "0.000")
    await read(product, "M4", now - timedelta(minutes=5), "50.000")
    await settle(api, "P", "-50.00")
    # Consumption this month is next month's bill, due on the 10th, three days' grace.
    local = now.astimezone(SHANGHAI)
    next_month = (local.replace(day=28) + timedelta(days=7)).replace(day=1, hour=12)
    await product.billing.calendar.sweep(now=next_month.replace(day=13))
    account = await ok(await api.get("/api/v1/accounts/P"))
    assert account["supply"] == "on"
    assert not [line for line in await ledger_kinds(api, "P") if line["kind"] == "late_fee"]
    await product.billing.calendar.sweep(now=next_month.replace(day=14))
    fees = [line for line in await ledger_kinds(api, "P") if line["kind"] == "late_fee"]
    # The 11th to the 14th: 0.1% of 50.00 a day.
    assert sorted(line["amount"] for line in fees) == ["-0.05"] * 4
    account = await ok(await api.get("/api/v1/accounts/P"))
    assert account["supply"] == "off"
    events = await ok(await api.get("/api/v1/meters/M4/supply-events"))
    assert any(e["reason"] == "postpaid bill overdue" for e in events["items"])
    # Paid: supply back and no more fees, however often the calendar runs that day.
    await top_up(api, "P", "60.00", "R-P1")
    await settle(api, "P", "9.80")
    await product.billing.calendar.sweep(now=next_month.replace(day=15))
    await product.billing.calendar.sweep(now=next_month.replace(day=15, hour=13))
    assert len([line for line in await ledger_kinds(api, "P") if line["kind"] == "late_fee"]) == 4
    assert (await ok(await api.get("/api/v1/accounts/P")))["supply"] == "on"
    bill = await ok(await api.get("/api/v1/accounts/P/postpaid-bill"))
    assert bill["terms"]["due_day"] == 10
    prepaid = await api.put("/api/v1/accounts/A-prepaid/postpaid-terms", json=terms)
    assert prepaid.status_code == 404
    await open_account(api, "Q")
    assert (await api.put("/api/v1/accounts/Q/postpaid-terms", json=terms)).status_code == 422


async def test_apportionment_shares_the_common_cost_exactly_by_area_and_by_use(
    site: tuple[Standalone, httpx.AsyncClient],
) -> None:
    product, api = site
    await open_account(api, "COMMON")
    await bind(api, "COMMON", "M5")
    for account_id, meter, area in (("H1", "M6", "30"), ("H2", "M7", "70"), ("H3", "M8", "50")):
        await open_account(api, account_id)
        await bind(api, account_id, meter)
        await ok(await api.put(f"/api/v1/accounts/{account_id}/profile", json={"area_m2": area}))
    await open_account(api, "COMMON2")
    await bind(api, "COMMON2", "M9")
    # Last month: the lobby meter used 100.01 kWh, the lifts' 40; H1 used 10, H2 30, H3 none.
    local = utcnow().astimezone(SHANGHAI)
    last_month = (local.replace(day=1) - timedelta(days=20)).replace(
        hour=12, minute=0, second=0, microsecond=0
    )
    month = last_month.strftime("%Y-%m")
    for meter, start, end in (
        ("M5", "0", "100.010"),
        ("M9", "0", "40"),
        ("M6", "0", "10"),
        ("M7", "0", "30"),
        ("M8", "5", "5"),
    ):
        await read(product, meter, last_month, start)
        await read(product, meter, last_month + timedelta(days=1), end)
    await settle(api, "COMMON", "-100.01")
    await settle(api, "COMMON2", "-40.00")
    await settle(api, "H2", "-30.00")
    rule = {
        "id": "lobby",
        "name": "Lobby lights",
        "common_account_id": "COMMON",
        "method": "area",
        "members": ["H1", "H2", "H3"],
    }
    await ok(await api.post("/api/v1/apportionment-rules", json=rule), 201)
    this_month = local.strftime("%Y-%m")
    early = await api.post("/api/v1/apportionment-rules/lobby/runs", json={"month": this_month})
    assert early.status_code == 422
    runs = "/api/v1/apportionment-rules/lobby/runs"
    run = await ok(await api.post(runs, json={"month": month}), 201)
    shares = {share["account_id"]: Decimal(share["amount"]) for share in run["shares"]}
    # 100.01 by 30 : 70 : 50 m2 is 20.002, 46.671.. and 33.336..: each rounded down to the
    # fen, and the one fen left goes to the largest remainder (H3).
    assert shares == {"H1": Decimal("20.00"), "H2": Decimal("46.67"), "H3": Decimal("33.34")}
    assert sum(shares.values()) == Decimal(run["total"]) == Decimal("100.01")
    assert await balance(api, "COMMON") == 0
    assert await balance(api, "H1") == Decimal("-30.00")
    line = next(x for x in await ledger_kinds(api, "H1") if x["kind"] == "apportionment")
    assert "lobby" in line["memo"]
    assert "floor area" in line["memo"]
    assert await ok(await api.post(runs, json={"month": month}), 201) == run
    assert await balance(api, "H1") == Decimal("-30.00")
    # One rule per common account: a second would share the same cost twice.
    twice = await api.post("/api/v1/apportionment-rules", json={**rule, "id": "again"})
    assert twice.status_code == 409
    # By consumption: H1 10 kWh, H2 30, H3 none share the lifts' 40.00.
    lifts = {**rule, "id": "lifts", "common_account_id": "COMMON2", "method": "consumption"}
    await ok(await api.post("/api/v1/apportionment-rules", json=lifts), 201)
    by_use = await ok(
        await api.post("/api/v1/apportionment-rules/lifts/runs", json={"month": month}), 201
    )
    assert {s["account_id"]: s["amount"] for s in by_use["shares"]} == {
        "H1": "10.00",
        "H2": "30.00",
        "H3": "0.00",
    }
    assert await balance(api, "COMMON2") == 0
    bad = await api.post("/api/v1/apportionment-rules", json={**rule, "members": ["H1", "H1"]})
    assert bad.status_code == 422
    unknown = await api.post("/api/v1/apportionment-rules", json={**rule, "members": ["nobody"]})
    assert unknown.status_code == 404
