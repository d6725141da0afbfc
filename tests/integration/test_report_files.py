"""Reports as files through the public API, on the whole product (both backends): the
monthly statement, the dunning notice, the energy report and the tripped accounts, each as
XLSX (opened with openpyxl: numbers are numbers, money shown with two decimals) and as PDF
(opened with pypdf: the Chinese text is there, drawn with a CID font, nothing installed)."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import openpyxl  # type: ignore[import-untyped]
import pypdf
import pytest
from prepaid_common.bus.rabbit import RabbitBus
from pydantic import SecretStr
from standalone.app import Standalone
from standalone.settings import StandaloneSettings

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ROWS: list[list[Any]] = [
    ["RM1", "RD", "10.0.0.7", 502, 1, None, "reference-prepaid", "RA1", "一楼茶叶店", None, 0.85],
    ["RM2", "RD", None, None, 2, None, "reference-prepaid", "RA2", "二楼花店", None, 0.85],
]


HEADER = ["表号", "集中器", "IP", "端口", "从站号", "地址", "型号", "户号", "户名", "电话", "电价"]


@pytest.fixture
async def product(
    backend: tuple[str, str], bus_prefix: str, tmp_path: Path
) -> AsyncIterator[Standalone]:
    database_url, amqp_url = backend
    product = Standalone(
        StandaloneSettings(
            data_dir=tmp_path / "data",
            database_url=database_url,
            amqp_url=amqp_url,
            bus_prefix=bus_prefix,
            simulator=False,
            collector_listen_port=0,
            token_secret=SecretStr("reports-test-secret-0123456789-abcdef"),
            admin_password=SecretStr("reports-admin"),
        )
    )
    await product.start()
    yield product
    await product.stop()
    if isinstance(product.bus, RabbitBus):
        await product.bus.delete_topology()


@pytest.fixture
async def api(product: Standalone) -> AsyncIterator[httpx.AsyncClient]:
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=product.app), base_url="http://test", timeout=60
    )
    token = (
        await client.post(
            "/api/v1/auth/token", data={"username": "admin", "password": "reports-admin"}
        )
    ).json()["access_token"]
    client.headers["Authorization"] = f"Bearer {token}"
    yield client
    await client.aclose()


def workbook(rows: list[list[Any]]) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(HEADER)
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


async def setup(api: httpx.AsyncClient) -> None:
    response = await api.post("/api/v1/imports", files={"file": ("r.xlsx", workbook(ROWS))})
    assert response.status_code == 200, response.text
    top_up = await api.post(
        "/api/v1/accounts/RA1/top-ups", json={"amount": "100.50", "receipt": "R-1"}
    )
    assert top_up.status_code == 201, top_up.text
    arrears = await api.post(
        "/api/v1/accounts/RA2/arrears",
        json={"amount": "35.25", "key": "old-debt", "reason": "旧欠费"},
    )
    assert arrears.status_code == 201, arrears.text
    # A counter top-up reaches the ledger through the bus: wait until it is posted.
    deadline = asyncio.get_running_loop().time() + 30
    while (await api.get("/api/v1/accounts/RA1")).json()["balance"] != "100.50":
        assert asyncio.get_running_loop().time() < deadline, "the top-up was never posted"
        await asyncio.sleep(0.1)


def sheet_cells(data: bytes) -> list[tuple[Any, ...]]:
    book = openpyxl.load_workbook(io.BytesIO(data))
    return [tuple(row) for row in book.active.iter_rows()]


def row_starting(cells: list[tuple[Any, ...]], first: str) -> tuple[Any, ...]:
    return next(row for row in cells if row[0].value == first)


def pdf_text(data: bytes) -> str:
    assert data.startswith(b"%PDF")
    reader = pypdf.PdfReader(io.BytesIO(data))
    return "".join(page.extract_text() for page in reader.pages)


async def download(api: httpx.AsyncClient, path: str, file_format: str, **params: Any) -> bytes:
    response = await api.get(path, params={"format": file_format, **params})
    assert response.status_code == 200, response.text
    wanted = XLSX if file_format == "xlsx" else "application/pdf"
    assert response.headers["content-type"] == wanted
    assert f'.{file_format}"' in response.headers["content-disposition"]
    return response.content


async def test_the_statement_as_xlsx_and_pdf(api: httpx.AsyncClient) -> None:
    await setup(api)
    month = datetime.now(UTC).strftime("%Y-%m")
    path = f"/api/v1/accounts/RA1/statements/{month}"
    as_json = (await api.get(path)).json()
    assert Decimal(as_json["closing_balance"]) == Decimal("100.50")
    cells = sheet_cells(await download(api, path, "xlsx"))
    closing = row_starting(cells, "期末余额 Closing balance")[1]
    assert closing.value == Decimal("100.50") or closing.value == 100.5
    assert isinstance(closing.value, int | float | Decimal)
    assert closing.number_format == "0.00"
    assert row_starting(cells, "户名 Name")[1].value == "一楼茶叶店"
    text = pdf_text(await download(api, path, "pdf"))
    for wanted in ("电费账单", "一楼茶叶店", "期末余额", "100.50", "RA1"):
        assert wanted in text, (wanted, text)
    # Asked by the Accept header instead of ?format=.
    by_accept = await api.get(path, headers={"Accept": "application/pdf"})
    assert by_accept.headers["content-type"] == "application/pdf"


async def test_the_dunning_notice_as_xlsx_and_pdf(api: httpx.AsyncClient) -> None:
    await setup(api)
    cells = sheet_cells(await download(api, "/api/v1/dunning", "xlsx"))
    owing = row_starting(cells, "RA2")
    assert owing[1].value == "二楼花店"
    assert owing[5].value == Decimal("35.25") or owing[5].value == 35.25
    assert owing[5].number_format == "0.00"
    assert all(row[0].value != "RA1" for row in cells)
    text = pdf_text(await download(api, "/api/v1/dunning", "pdf"))
    for wanted in ("催缴单", "二楼花店", "35.25", "请尽快缴清欠费"):
        assert wanted in text, (wanted, text)
    assert "一楼茶叶店" not in text


async def test_the_energy_report_as_xlsx_and_pdf(api: httpx.AsyncClient) -> None:
    await setup(api)
    for path, subject in (
        ("/api/v1/meters/RM1/usage", "RM1"),
        ("/api/v1/accounts/RA1/usage", "RA1"),
    ):
        cells = sheet_cells(await download(api, path, "xlsx", granularity="month"))
        assert cells[0][0].value.startswith("用电报表")
        headers = [c.value for c in row_starting(cells, "日期 Period")]
        assert headers[:3] == ["日期 Period", "表计电量 Metered (kWh)", "计费电量 Billed (kWh)"]
        total = row_starting(cells, "合计 Total")
        assert total[1].number_format == "0.000"
        assert total[4].number_format == "0.00"
        text = pdf_text(await download(api, path, "pdf"))
        for wanted in ("用电报表", "电表与系统对比", subject):
            assert wanted in text, (wanted, text)


async def test_the_tripped_accounts_as_xlsx_and_pdf(
    product: Standalone, api: httpx.AsyncClient
) -> None:
    await setup(api)
    # RA2 owes and has no credit: its supply is decided off; RA1 has credit.
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        listed = (await api.get("/api/v1/reports/tripped")).json()["items"]
        if [a["id"] for a in listed] == ["RA2"] or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.2)
    assert [a["id"] for a in listed] == ["RA2"]
    cells = sheet_cells(await download(api, "/api/v1/reports/tripped", "xlsx"))
    tripped = row_starting(cells, "RA2")
    assert (tripped[1].value, tripped[2].value) == ("二楼花店", "RM2")
    assert tripped[3].number_format == "0.00"
    text = pdf_text(await download(api, "/api/v1/reports/tripped", "pdf"))
    for wanted in ("断电户清单", "二楼花店", "RM2"):
        assert wanted in text, (wanted, text)
    assert "一楼茶叶店" not in text


async def test_a_format_nobody_offers_is_a_422_problem(
    api: httpx.AsyncClient,
) -> None:
    await setup(api)
    month = datetime.now(UTC).strftime("%Y-%m")
    bad = await api.get(f"/api/v1/accounts/RA1/statements/{month}", params={"format": "doc"})
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("application/problem+json")


async def test_daily_and_monthly_sales_by_channel_and_operator_as_xlsx_and_pdf(
    api: httpx.AsyncClient,
) -> None:
    await setup(api)
    refund = await api.post(
        "/api/v1/accounts/RA1/refunds",
        json={"amount": "10.00", "key": "refund-1", "reason": "退款", "method": "cash"},
    )
    assert refund.status_code == 201, refund.text
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()
    params = {"from": today, "to": today}
    report = (await api.get("/api/v1/reports/sales", params=params)).json()
    assert [(r["period"], r["channel"], r["operator"], r["payments"]) for r in report["items"]] == [
        (today, "cash", "admin", 1)
    ]
    row = report["items"][0]
    assert (Decimal(row["received"]), Decimal(row["refunded"]), Decimal(row["net"])) == (
        Decimal("100.50"),
        Decimal("10.00"),
        Decimal("90.50"),
    )
    assert {k: Decimal(v) for k, v in report["by_channel"].items()} == {"cash": Decimal("90.50")}
    cells = sheet_cells(await download(api, "/api/v1/reports/sales", "xlsx", **params))
    sold = row_starting(cells, today)
    assert (sold[1].value, sold[2].value, sold[3].value) == ("现金 cash", "admin", 1)
    assert sold[6].value in (Decimal("90.50"), 90.5)
    assert sold[6].number_format == "0.00"
    text = pdf_text(await download(api, "/api/v1/reports/sales", "pdf", **params))
    for wanted in ("收款报表", "现金", "admin", "100.50", "90.50"):
        assert wanted in text, (wanted, text)
    monthly = (
        await api.get("/api/v1/reports/sales", params={**params, "granularity": "month"})
    ).json()
    assert [r["period"] for r in monthly["items"]] == [today[:7]]
    backwards = await api.get("/api/v1/reports/sales", params={"from": today, "to": "2000-01-01"})
    assert backwards.status_code == 422
