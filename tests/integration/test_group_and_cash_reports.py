"""Issue 16, reports: the energy report of an account group (用电报表 by group) and the sales
report's cashier shifts (收费员日结), over the public API on the whole product (both
backends), as JSON, as XLSX (opened with openpyxl) and as PDF (its text extracted)."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import openpyxl  # type: ignore[import-untyped]
import pypdf
import pytest
from prepaid_common.bus.rabbit import RabbitBus
from prepaid_common.contracts import Envelope, ReadingV1
from pydantic import SecretStr
from standalone.app import Standalone
from standalone.settings import StandaloneSettings
from testkit import wait_until

ADMIN = "group-reports-admin"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
SITE_ZONE = ZoneInfo("Asia/Shanghai")  # the site policy's zone by default
FIGURES = ("metered_kwh", "billed_kwh", "difference_kwh", "cost")


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
            token_secret=SecretStr("group-reports-secret-0123456789-abcdef"),
            admin_password=SecretStr(ADMIN),
        )
    )
    await product.start()
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=product.app), base_url="http://test", timeout=60
    )
    login = await client.post("/api/v1/auth/token", data={"username": "admin", "password": ADMIN})
    client.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
    yield product, client
    await client.aclose()
    await product.stop()
    if isinstance(product.bus, RabbitBus):
        await product.bus.delete_topology()


async def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


async def signed_in(
    api: httpx.AsyncClient, name: str, role: str, **extra: Any
) -> httpx.AsyncClient:
    password = f"{name} has a long pass"
    body = {"username": name, "password": password, "role": role, **extra}
    await ok(await api.post("/api/v1/users", json=body), 201)
    client = httpx.AsyncClient(transport=api._transport, base_url="http://test", timeout=60)
    login = await client.post("/api/v1/auth/token", data={"username": name, "password": password})
    client.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
    return client


async def read(product: Standalone, meter_id: str, at: datetime, kwh: str) -> None:
    reading = ReadingV1(meter_id=meter_id, dtu_id="D1", read_at=at, energy_kwh=Decimal(kwh))
    await product.bus.publish(Envelope.wrap(reading, producer="collector"))


async def download(api: httpx.AsyncClient, path: str, file_format: str, **params: Any) -> bytes:
    response = await api.get(path, params={"format": file_format, **params})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == (
        XLSX if file_format == "xlsx" else "application/pdf"
    )
    return response.content


def sheets(data: bytes) -> dict[str, list[tuple[Any, ...]]]:
    book = openpyxl.load_workbook(io.BytesIO(data))
    return {sheet.title: [tuple(row) for row in sheet.iter_rows()] for sheet in book.worksheets}


def rows_after(cells: list[tuple[Any, ...]], heading: str) -> list[tuple[Any, ...]]:
    """The rows of the table under ``heading``, its header row excluded, up to a blank."""
    start = next(i for i, row in enumerate(cells) if row[0].value == heading) + 2
    table = []
    for row in cells[start:]:
        if row[0].value is None:
            break
        table.append(row)
    return table


def number(cell: Any, kind: str) -> Decimal:
    # A number cell (never text), shown with the places of its kind.
    assert isinstance(cell.value, int | float | Decimal), cell.value
    assert cell.number_format == {"energy": "0.000", "money": "0.00"}[kind]
    return Decimal(str(cell.value)).quantize(Decimal("0.001" if kind == "energy" else "0.01"))


def pdf_text(data: bytes) -> str:
    assert data.startswith(b"%PDF")
    reader = pypdf.PdfReader(io.BytesIO(data))
    return "".join(page.extract_text() for page in reader.pages)


def decimals(figures: dict[str, Any]) -> tuple[Decimal, ...]:
    return tuple(Decimal(figures[name]) for name in FIGURES)


def added(*rows: tuple[Decimal, ...]) -> tuple[Decimal, ...]:
    return tuple(sum(column, Decimal(0)) for column in zip(*rows, strict=True))


# --- the energy report of a group ------------------------------------------------------------
async def make_block(product: Standalone, api: httpx.AsyncClient) -> tuple[str, str]:
    """Block A: GA1 (two meters, one behind a x2 CT) and GA2 (a Chinese name); GB1 in block B.
    Readings over three local days; returns the report's (from, to)."""
    meters = [{"id": f"M{n}", "unit_id": n, "profile": "reference-prepaid"} for n in (1, 2, 3, 4)]
    dtu = {"id": "D1", "name": "Block A", "host": "127.0.0.1", "port": 9, "meters": meters}
    await ok(await api.post("/api/v1/dtus", json=dtu), 201)
    for account_id, name, price, groups in (
        ("GA1", "一号楼101 茶叶店", "1.00", ["block-a", "floor:1"]),
        ("GA2", "一号楼102 花店", "0.85", ["block-a"]),
        ("GB1", "二号楼201", "1.00", ["block-b"]),
    ):
        body = {"id": account_id, "name": name, "price_per_kwh": price, "groups": groups}
        await ok(await api.post("/api/v1/accounts", json=body), 201)
    for account_id, meter_id, multiplier in (
        ("GA1", "M1", "1"),
        ("GA1", "M2", "2"),
        ("GA2", "M3", "1"),
        ("GB1", "M4", "1"),
    ):
        binding = {"meter_id": meter_id, "multiplier": multiplier}
        await ok(await api.post(f"/api/v1/accounts/{account_id}/meters", json=binding), 201)
    now = datetime.now(UTC)
    registers = {
        "M1": ("100.000", "140.000", "145.500"),
        "M2": ("10.000", "30.000", "31.250"),
        "M3": ("0.000", "12.340", "20.000"),
        "M4": ("500.000", "900.000", "990.000"),
    }
    for meter_id, (first, second, third) in registers.items():
        await read(product, meter_id, now - timedelta(days=2, hours=1), first)
        await read(product, meter_id, now - timedelta(days=1), second)
        await read(product, meter_id, now - timedelta(minutes=5), third)

    async def all_rated() -> bool:
        metered = {}
        for account_id in ("GA1", "GA2", "GB1"):
            usage = await ok(await api.get(f"/api/v1/accounts/{account_id}/usage"))
            metered[account_id] = sum(Decimal(p["metered_kwh"]) for p in usage["items"])
        return metered == {"GA1": Decimal("66.75"), "GA2": Decimal("20"), "GB1": Decimal("490")}

    await wait_until(all_rated, timeout=60)
    today = datetime.now(SITE_ZONE).date()
    return (today - timedelta(days=4)).isoformat(), today.isoformat()


async def test_the_group_energy_report_adds_up_its_accounts_reports(
    site: tuple[Standalone, httpx.AsyncClient],
) -> None:
    product, api = site
    start, end = await make_block(product, api)
    period = {"from": start, "to": end}
    for granularity in ("day", "month"):
        params = {**period, "granularity": granularity}
        report = await ok(await api.get("/api/v1/groups/block-a/usage", params=params))
        assert (report["group"], report["granularity"]) == ("block-a", granularity)
        # Only the accounts that carry the group; GB1 is in block B.
        assert [a["account_id"] for a in report["accounts"]] == ["GA1", "GA2"]
        account_totals = []
        for account in report["accounts"]:
            own = await ok(
                await api.get(f"/api/v1/accounts/{account['account_id']}/usage", params=params)
            )
            # Each account's periods are its own report's rows, to the digit.
            assert [
                (
                    p["period"],
                    Decimal(p["metered_kwh"]),
                    Decimal(p["billed_kwh"]),
                    Decimal(p["cost"]),
                )
                for p in own["items"]
            ] == [
                (
                    p["period"],
                    Decimal(p["metered_kwh"]),
                    Decimal(p["billed_kwh"]),
                    Decimal(p["cost"]),
                )
                for p in account["items"]
            ]
            own_total = (
                sum((Decimal(p["metered_kwh"]) for p in own["items"]), Decimal(0)),
                sum((Decimal(p["billed_kwh"]) for p in own["items"]), Decimal(0)),
                sum(
                    (Decimal(p["metered_kwh"]) - Decimal(p["billed_kwh"]) for p in own["items"]),
                    Decimal(0),
                ),
                sum((Decimal(p["cost"]) for p in own["items"]), Decimal(0)),
            )
            assert decimals(account) == own_total
            assert added(*(decimals(m) for m in account["meters"])) == own_total
            account_totals.append(own_total)
        # The group's totals are the sum of its accounts' reports, and so are its periods.
        assert decimals(report) == added(*account_totals)
        assert added(*(decimals(p) for p in report["items"])) == decimals(report)
        if granularity == "day":
            assert len(report["items"]) >= 2
    report = await ok(await api.get("/api/v1/groups/block-a/usage", params=period))
    ga1, ga2 = report["accounts"]
    assert ga2["name"] == "一号楼102 花店"
    # GA1's M2 is behind a x2 CT: billed twice what it counted, the difference shows it.
    m1, m2 = ga1["meters"]
    assert (m1["meter_id"], m2["meter_id"]) == ("M1", "M2")
    assert decimals(m1)[:3] == (Decimal("45.5"), Decimal("45.5"), Decimal("0"))
    assert decimals(m2)[:3] == (Decimal("21.25"), Decimal("42.5"), Decimal("-21.25"))
    assert Decimal(ga1["cost"]) == Decimal("88.00")  # 88 kWh billed at 1.00
    assert Decimal(ga2["cost"]) == Decimal("17.00")  # 20 kWh at 0.85
    assert decimals(report) == (Decimal("86.75"), Decimal("108"), Decimal("-21.25"), Decimal("105"))

    cells = sheets(await download(api, "/api/v1/groups/block-a/usage", "xlsx", **period))
    [main] = cells.values()
    assert main[0][0].value.startswith("分组用电报表")
    by_account = rows_after(main, "按户 By account")
    assert [row[0].value for row in by_account] == ["GA1", "GA2", "合计 Total"]
    assert (by_account[1][1].value, by_account[0][2].value) == ("一号楼102 花店", "M1, M2")
    energy = ("energy", "energy", "energy", "money")
    for row, figures in zip(by_account, (ga1, ga2, report), strict=True):
        assert tuple(
            number(cell, kind) for cell, kind in zip(row[3:7], energy, strict=True)
        ) == decimals(figures)
    by_meter = rows_after(main, "按表 By meter")
    assert [(row[0].value, row[1].value) for row in by_meter[:-1]] == [
        ("GA1", "M1"),
        ("GA1", "M2"),
        ("GA2", "M3"),
    ]
    assert number(by_meter[1][3], "energy") == Decimal("42.500")
    by_period = rows_after(main, "分组按期 Group by period")
    assert [row[0].value for row in by_period[:-1]] == [p["period"] for p in report["items"]]
    assert number(by_period[-1][4], "money") == Decimal("105.00")

    text = pdf_text(await download(api, "/api/v1/groups/block-a/usage", "pdf", **period))
    for wanted in (
        "分组用电报表",
        "block-a",
        "一号楼101 茶叶店",
        "一号楼102 花店",
        "按户",
        "86.750",
        "108.000",
        "-21.250",
        "105.00",
        "88.00",
    ):
        assert wanted in text, (wanted, text)
    assert "二号楼201" not in text


async def test_the_group_report_refuses_what_it_cannot_answer(
    site: tuple[Standalone, httpx.AsyncClient],
) -> None:
    _, api = site
    body = {"id": "GA1", "name": "GA1", "price_per_kwh": "1", "groups": ["block-a"]}
    await ok(await api.post("/api/v1/accounts", json=body), 201)
    empty = await ok(await api.get("/api/v1/groups/block-a/usage"))
    assert [a["account_id"] for a in empty["accounts"]] == ["GA1"]
    assert (empty["accounts"][0]["meters"], empty["items"]) == ([], [])
    assert decimals(empty) == (Decimal(0),) * 4
    missing = await api.get("/api/v1/groups/block-z/usage")
    assert missing.status_code == 404, missing.text
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert "block-z" in missing.json()["detail"]
    for bad in (
        {"from": "2026-13-01"},
        {"to": "yesterday"},
        {"from": "2026-02-02", "to": "2026-02-01"},
    ):
        refused = await api.get("/api/v1/groups/block-a/usage", params=bad)
        assert refused.status_code == 422, (bad, refused.text)
    tenant = await signed_in(api, "tenant-ga1", "tenant", account_ids=["GA1"])
    try:
        assert (await tenant.get("/api/v1/groups/block-a/usage")).status_code == 403
    finally:
        await tenant.aclose()


# --- the sales report's cashier shifts ---------------------------------------------------------
async def test_the_sales_report_reconciles_the_counter_cash_with_the_shifts(
    site: tuple[Standalone, httpx.AsyncClient],
) -> None:
    _, api = site
    for account_id in ("S1", "S2"):
        body = {"id": account_id, "name": f"商铺 {account_id}", "price_per_kwh": "1.00"}
        await ok(await api.post("/api/v1/accounts", json=body), 201)
    wang = await signed_in(api, "cashier-wang", "operator")
    li = await signed_in(api, "cashier-li", "operator")
    try:

        async def top_up(
            client: httpx.AsyncClient, account: str, amount: str, receipt: str
        ) -> None:
            body = {"amount": amount, "receipt": receipt}
            await ok(await client.post(f"/api/v1/accounts/{account}/top-ups", json=body), 201)

        async def drawer(client: httpx.AsyncClient, expected: str) -> None:
            # A counter top-up reaches the ledger through the bus: wait for the shift to show it.
            async def there() -> bool:
                shift = await ok(await client.get("/api/v1/cashier-shifts/current"))
                return Decimal(shift["expected_cash"]) == Decimal(expected)

            await wait_until(there, timeout=30)

        await top_up(wang, "S1", "50.00", "W-1")
        await top_up(wang, "S2", "30.00", "W-2")
        await top_up(li, "S2", "20.00", "L-1")
        await drawer(wang, "80.00")
        await drawer(li, "20.00")
        # Wang's drawer is 10.00 short; Li's is right.
        await ok(await wang.post("/api/v1/cashier-shifts", json={"counted_cash": "70.00"}), 201)
        await ok(await li.post("/api/v1/cashier-shifts", json={"counted_cash": "20.00"}), 201)
        # After the closes: Li takes 15.00 and the admin 7.00, in no closed shift yet.
        await top_up(li, "S1", "15.00", "L-2")
        await top_up(api, "S1", "7.00", "A-1")
        await drawer(li, "15.00")
        await drawer(api, "7.00")
    finally:
        await wang.aclose()
        await li.aclose()
    today = datetime.now(SITE_ZONE).date().isoformat()
    params = {"from": today, "to": today}
    report = await ok(await api.get("/api/v1/reports/sales", params=params))
    assert Decimal(report["by_channel"]["cash"]) == Decimal("122.00")
    cash = report["cash"]
    assert [(s["cashier"], Decimal(s["difference"])) for s in cash["shifts"]] == [
        ("cashier-wang", Decimal("-10.00")),
        ("cashier-li", Decimal("0.00")),
    ]
    assert [
        (c["cashier"], c["shifts"], Decimal(c["expected_cash"]), Decimal(c["difference"]))
        for c in cash["by_cashier"]
    ] == [
        ("cashier-li", 1, Decimal("20.00"), Decimal("0.00")),
        ("cashier-wang", 1, Decimal("80.00"), Decimal("-10.00")),
    ]
    amounts = {
        name: Decimal(cash[name])
        for name in (
            "expected_cash",
            "counted_cash",
            "difference",
            "counter_cash",
            "before_span",
            "not_yet_closed",
            "outside_shifts",
        )
    }
    assert amounts == {
        "expected_cash": Decimal("100.00"),
        "counted_cash": Decimal("90.00"),
        "difference": Decimal("-10.00"),
        "counter_cash": Decimal("122.00"),
        "before_span": Decimal("0.00"),
        "not_yet_closed": Decimal("22.00"),
        "outside_shifts": Decimal("0.00"),
    }
    assert cash["agrees"] is True

    # A reversal (冲正) of Wang's first top-up takes cash back that no shift counts.
    lines = (await ok(await api.get("/api/v1/accounts/S1/ledger", params={"limit": 100})))["items"]
    [first] = [
        line for line in lines if line["kind"] == "top_up" and line["operator"] == "cashier-wang"
    ]
    await ok(
        await api.post(
            f"/api/v1/transactions/{first['transaction_id']}/reversal",
            json={"reason": "收错户"},
        ),
        201,
    )

    async def reversed_cash() -> dict[str, Any] | None:
        cash = (await ok(await api.get("/api/v1/reports/sales", params=params)))["cash"]
        return cash if Decimal(cash["outside_shifts"]) == Decimal("-50.00") else None

    cash = await wait_until(reversed_cash)
    assert (Decimal(cash["counter_cash"]), cash["agrees"]) == (Decimal("72.00"), True)
    # A day before any of it: no shift, no cash, nothing to disagree about.
    yesterday = (datetime.now(SITE_ZONE).date() - timedelta(days=1)).isoformat()
    quiet = await ok(
        await api.get("/api/v1/reports/sales", params={"from": yesterday, "to": yesterday})
    )
    assert (quiet["cash"]["shifts"], quiet["cash"]["agrees"]) == ([], True)

    cells = sheets(await download(api, "/api/v1/reports/sales", "xlsx", **params))
    main, shifts = cells.values()
    verdict = next(row for row in main if row[0].value == "现金与日结 Cash vs shifts")
    assert verdict[1].value == "一致 agrees"
    closed = rows_after(shifts, "日结明细 Shifts closed in the span")
    assert [row[0].value for row in closed] == ["cashier-wang", "cashier-li", "合计 Total"]
    assert isinstance(closed[0][2].value, datetime)  # the close time, as a date-time cell
    assert [number(row[5], "money") for row in closed] == [
        Decimal("-10.00"),
        Decimal("0.00"),
        Decimal("-10.00"),
    ]
    assert (number(closed[0][3], "money"), number(closed[0][4], "money")) == (
        Decimal("80.00"),
        Decimal("70.00"),
    )
    per_cashier = rows_after(shifts, "按收费员 By cashier")
    assert [(row[0].value, number(row[4], "money")) for row in per_cashier] == [
        ("cashier-li", Decimal("0.00")),
        ("cashier-wang", Decimal("-10.00")),
        ("合计 Total", Decimal("-10.00")),
    ]
    checked = {
        row[0].value: row[1]
        for row in rows_after(shifts, "现金核对 Counter cash against the shifts")
    }
    assert number(checked["柜台现金 Counter cash (ledger)"], "money") == Decimal("72.00")
    assert number(checked["加：未日结 Add: not yet closed"], "money") == Decimal("22.00")

    text = pdf_text(await download(api, "/api/v1/reports/sales", "pdf", **params))
    for wanted in (
        "收款报表",
        "日结明细",
        "cashier-wang",
        "cashier-li",
        "-10.00",
        "70.00",
        "未日结",
        "22.00",
        "一致 agrees",
    ):
        assert wanted in text, (wanted, text)
