"""Issue 19, the money rules at their edges, over the public API on both backends:
reversals never take the balance below zero and show on the payment, a refund repeated
under its key is a replay, top-ups name the cashier, daily debt recovery takes only what
the balance can bear, friendly hours have a debt ceiling, and the monthly fixed charge is
prorated for the month an account opens in and posted when the month changes."""

from __future__ import annotations

import calendar
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
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

ADMIN = "edges-money-admin"
SHANGHAI = ZoneInfo("Asia/Shanghai")


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
            token_secret=SecretStr("edges-money-secret-0123456789-0123"),
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


async def account(api: httpx.AsyncClient, account_id: str) -> dict[str, Any]:
    found: dict[str, Any] = await ok(await api.get(f"/api/v1/accounts/{account_id}"))
    return found


async def open_account(api: httpx.AsyncClient, account_id: str, **terms: Any) -> None:
    body = {"id": account_id, "name": account_id, "price_per_kwh": "1.00", **terms}
    await ok(await api.post("/api/v1/accounts", json=body), 201)


async def top_up(
    api: httpx.AsyncClient, account_id: str, amount: str, receipt: str, **headers: str
) -> dict[str, Any]:
    before = Decimal((await account(api, account_id))["balance"])
    body = {"amount": amount, "receipt": receipt}
    payment: dict[str, Any] = await ok(
        await api.post(f"/api/v1/accounts/{account_id}/top-ups", json=body, headers=headers), 201
    )

    async def credited() -> bool:
        balance = Decimal((await account(api, account_id))["balance"])
        return balance != before

    await wait_until(credited)
    return payment


async def ledger(api: httpx.AsyncClient, account_id: str) -> list[dict[str, Any]]:
    page = await ok(await api.get(f"/api/v1/accounts/{account_id}/ledger", params={"limit": 100}))
    items: list[dict[str, Any]] = page["items"]
    return items


async def read(product: Standalone, meter_id: str, at: datetime, kwh: str) -> None:
    reading = ReadingV1(meter_id=meter_id, dtu_id="D1", read_at=at, energy_kwh=Decimal(kwh))
    await product.bus.publish(Envelope.wrap(reading, producer="test"))


async def test_a_reversal_never_takes_the_balance_below_zero_and_the_payment_shows_it(
    site: tuple[Standalone, httpx.AsyncClient],
) -> None:
    _, api = site
    await open_account(api, "A")
    first = await top_up(api, "A", "20.00", "R-1")
    refund = {"amount": "20.00", "key": "REF-1", "reason": "moving out"}
    await ok(await api.post("/api/v1/accounts/A/refunds", json=refund), 201)
    top_ups = [line for line in await ledger(api, "A") if line["kind"] == "top_up"]
    reverse = {"reason": "keyed on the wrong account"}
    path = f"/api/v1/transactions/{top_ups[0]['transaction_id']}/reversal"
    refused = await api.post(path, json=reverse)
    # The money went back to the tenant already: reversing the top-up would make -20.00.
    assert refused.status_code == 409, refused.text
    assert "refund or record arrears" in refused.json()["detail"]
    assert Decimal((await account(api, "A"))["balance"]) == Decimal("0.00")

    second = await top_up(api, "A", "30.00", "R-2")
    line = next(li for li in await ledger(api, "A") if li["operation_key"].endswith(second["id"]))
    await ok(
        await api.post(f"/api/v1/transactions/{line['transaction_id']}/reversal", json=reverse), 201
    )
    assert Decimal((await account(api, "A"))["balance"]) == Decimal("0.00")
    payments = (await ok(await api.get("/api/v1/accounts/A/payments")))["items"]
    status = {p["id"]: p["status"] for p in payments}
    assert status == {first["id"]: "succeeded", second["id"]: "reversed"}


async def test_a_refund_repeated_with_its_key_replays_the_first_answer(
    site: tuple[Standalone, httpx.AsyncClient],
) -> None:
    _, api = site
    await open_account(api, "A")
    await top_up(api, "A", "50.00", "R-1")
    refund = {"amount": "20.00", "key": "REF-1", "reason": "overpaid"}
    first = await ok(await api.post("/api/v1/accounts/A/refunds", json=refund), 201)
    # The answer was lost; the cashier's screen sends it again, as it was.
    again = await ok(await api.post("/api/v1/accounts/A/refunds", json=refund), 201)
    assert again == first
    keyed = {"Idempotency-Key": "refund-overpaid"}
    with_header = await ok(
        await api.post("/api/v1/accounts/A/refunds", json=refund, headers=keyed), 201
    )
    assert with_header == first
    assert Decimal((await account(api, "A"))["balance"]) == Decimal("30.00")
    # The key used for another refund is still refused.
    other = {**refund, "amount": "5.00"}
    assert (await api.post("/api/v1/accounts/A/refunds", json=other)).status_code == 409
    assert [li["kind"] for li in await ledger(api, "A")].count("refund") == 1


async def test_top_up_entries_name_the_cashier(
    site: tuple[Standalone, httpx.AsyncClient],
) -> None:
    _, api = site
    user = {"username": "cashier-li", "password": "a long cashier pass", "role": "operator"}
    await ok(await api.post("/api/v1/users", json=user), 201)
    login = await api.post(
        "/api/v1/auth/token", data={"username": "cashier-li", "password": user["password"]}
    )
    cashier = {"Authorization": f"Bearer {login.json()['access_token']}"}
    await open_account(api, "A")
    await top_up(api, "A", "10.00", "R-1", **cashier)
    [line] = await ledger(api, "A")
    assert (line["kind"], line["operator"]) == ("top_up", "cashier-li")


async def test_daily_debt_recovery_takes_only_what_the_balance_can_bear(
    site: tuple[Standalone, httpx.AsyncClient],
) -> None:
    product, api = site
    await open_account(api, "A", debt_daily="1.00")
    arrears = {"amount": "10.00", "key": "OLD", "reason": "old bill"}
    await ok(await api.post("/api/v1/accounts/A/arrears", json=arrears), 201)
    await top_up(api, "A", "0.50", "R-1")
    await ok(await api.post("/api/v1/accounts/A/meters", json={"meter_id": "M1"}), 201)
    # Midnight: the recovery may take 0.49 of the 0.50, not 1.00 (which would cut M1).
    await product.billing.calendar.sweep(now=datetime.now(UTC) + timedelta(days=1))
    view = await account(api, "A")
    assert (Decimal(view["balance"]), Decimal(view["arrears"])) == (
        Decimal("0.01"),
        Decimal("-9.51"),
    )
    assert view["supply"] == "on"
    # Nothing left to take the next day: nothing is posted, the balance stays.
    await product.billing.calendar.sweep(now=datetime.now(UTC) + timedelta(days=2))
    assert Decimal((await account(api, "A"))["balance"]) == Decimal("0.01")
    kinds = [line["kind"] for line in await ledger(api, "A")]
    assert kinds.count("debt_recovery") == 1


async def test_friendly_hours_stop_at_their_debt_ceiling(
    site: tuple[Standalone, httpx.AsyncClient],
) -> None:
    product, api = site
    # Every day friendly: only the ceiling can cut.
    policy = {"timezone": "Asia/Shanghai", "friendly_weekdays": [0, 1, 2, 3, 4, 5, 6]}
    await ok(await api.put("/api/v1/policy", json=policy))
    await open_account(api, "A", friendly_debt_limit="5.00")
    await open_account(api, "B")
    assert (await account(api, "B"))["friendly_debt_limit"] == "20.00"  # the default
    await top_up(api, "A", "2.00", "R-1")
    await ok(await api.post("/api/v1/accounts/A/meters", json={"meter_id": "M1"}), 201)
    start = datetime.now(UTC) - timedelta(hours=3)
    await read(product, "M1", start, "100.000")

    async def balance_is(expected: str) -> bool:
        return Decimal((await account(api, "A"))["balance"]) == Decimal(expected)

    await read(product, "M1", start + timedelta(hours=1), "103.000")
    await wait_until(lambda: balance_is("-1.00"))
    assert (await account(api, "A"))["supply"] == "on"  # short, but friendly hours
    await read(product, "M1", start + timedelta(hours=2), "110.000")
    await wait_until(lambda: balance_is("-8.00"))
    view = await account(api, "A")
    assert view["supply"] == "off"
    events = await ok(await api.get("/api/v1/meters/M1/supply-events"))
    assert "ceiling" in events["items"][0]["reason"]


async def test_the_monthly_charge_is_prorated_and_posted_when_the_month_changes(
    site: tuple[Standalone, httpx.AsyncClient],
) -> None:
    product, api = site
    definition = {"kind": "flat", "price_per_kwh": "1.00", "monthly_charge": "31.00"}
    tariff = {"id": "shop-monthly", "name": "Shop", "definition": definition}
    await ok(await api.post("/api/v1/tariffs", json=tariff), 201)
    await open_account(api, "A", tariff_id="shop-monthly", price_per_kwh=None)
    opened = datetime.fromisoformat((await account(api, "A"))["created_at"]).astimezone(SHANGHAI)
    days = calendar.monthrange(opened.year, opened.month)[1]
    last_day = opened.replace(day=days, hour=23, minute=30)
    next_month = last_day + timedelta(hours=1)  # 00:30 on the 1st
    await product.billing.calendar.sweep(now=last_day)
    await product.billing.calendar.sweep(now=last_day)  # a second sweep posts nothing more
    await product.billing.calendar.sweep(now=next_month)
    monthly = [line for line in await ledger(api, "A") if line["kind"] == "monthly_charge"]
    by_month = {
        line["operation_key"].rsplit(":", 1)[1]: -Decimal(line["amount"]) for line in monthly
    }
    open_days = days - opened.day + 1
    prorated = (Decimal("31.00") * open_days / days).quantize(Decimal("0.01"), ROUND_HALF_UP)
    assert by_month == {
        opened.strftime("%Y-%m"): prorated,
        next_month.strftime("%Y-%m"): Decimal("31.00"),
    }
