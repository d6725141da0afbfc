"""Bulk import through the public API, on the whole product (both backends): the template,
a dry run naming every problem by row and column and writing nothing, an apply writing
everything or nothing, applying again, and what happens when billing fails mid-apply."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openpyxl  # type: ignore[import-untyped]
import pytest
from prepaid_common.bus.rabbit import RabbitBus
from pydantic import SecretStr
from standalone.app import Standalone
from standalone.settings import StandaloneSettings

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
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
            token_secret=SecretStr("imports-test-secret-0123456789-abcdef"),
            admin_password=SecretStr("imports-admin"),
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
            "/api/v1/auth/token", data={"username": "admin", "password": "imports-admin"}
        )
    ).json()["access_token"]
    client.headers["Authorization"] = f"Bearer {token}"
    yield client
    await client.aclose()


def workbook(rows: list[list[Any]], tariffs: list[list[Any]] | None = None) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "表计"
    sheet.append(HEADER)
    for row in rows:
        sheet.append(row)
    if tariffs is not None:
        tariff_sheet = book.create_sheet("电价")
        tariff_sheet.append(["电价编号", "电价名称", "单价"])
        for row in tariffs:
            tariff_sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def csv_file(rows: list[list[Any]]) -> bytes:
    lines = [",".join(HEADER)] + [",".join(str(c) for c in row) for row in rows]
    # As Excel on a Chinese Windows saves a CSV: GB18030.
    return ("\r\n".join(lines) + "\r\n").encode("gb18030")


async def check(api: httpx.AsyncClient, data: bytes, name: str = "import.xlsx") -> Any:
    response = await api.post("/api/v1/imports/check", files={"file": (name, data)})
    assert response.status_code == 200, response.text
    return response.json()


async def apply(api: httpx.AsyncClient, data: bytes, name: str = "import.xlsx") -> httpx.Response:
    return await api.post("/api/v1/imports", files={"file": (name, data)})


async def counts(api: httpx.AsyncClient) -> tuple[int, int, int]:
    meters = (await api.get("/api/v1/meters", params={"limit": 500})).json()
    dtus = (await api.get("/api/v1/dtus")).json()["items"]
    accounts = (await api.get("/api/v1/accounts", params={"limit": 500})).json()
    return meters["total"], len(dtus), accounts["total"]


GOOD: list[list[Any]] = [
    [
        "M1",
        "D1",
        "10.0.0.1",
        502,
        1,
        None,
        "reference-prepaid",
        "A1",
        "一楼茶叶店",
        "13800138000",
        0.85,
    ],
    ["M2", "D1", None, None, 2, None, "reference-prepaid", "A1", None, None, None],
    ["M3", "D1", None, None, None, "3", "reference-prepaid", "A2", "花店", None, "home"],
    ["M4", "D2", "10.0.0.2", 502, 1, None, "reference-prepaid", None, None, None, None],
]


def good_file() -> bytes:
    """The four good rows with the tariff row A2 names."""
    return workbook(GOOD, tariffs=[["home", "居民电价", 0.6]])


async def test_template_downloads_as_xlsx_and_csv(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/v1/imports/template")
    assert response.status_code == 200
    assert response.headers["content-type"] == XLSX
    assert 'filename="import-template.xlsx"' in response.headers["content-disposition"]
    book = openpyxl.load_workbook(io.BytesIO(response.content))
    assert book.sheetnames[:2] == ["meters", "tariffs"]
    headers = [c.value for c in book["meters"][1]]
    for wanted in (
        "表号/meter_id",
        "集中器/dtu_id",
        "从站号/unit_id",
        "型号/profile",
        "户号/account_id",
    ):
        assert wanted in headers
    as_csv = await api.get("/api/v1/imports/template", params={"format": "csv"})
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert as_csv.content.decode("utf-8-sig").splitlines()[0].split(",") == headers
    described = (await api.get("/api/v1/imports/template", params={"format": "json"})).json()
    assert [c["header"] for c in described["columns"] if c["sheet"] == "meters"] == headers


async def test_the_filled_template_imports(api: httpx.AsyncClient) -> None:
    template = openpyxl.load_workbook(
        io.BytesIO((await api.get("/api/v1/imports/template")).content)
    )
    meters = template["meters"]
    headers = [c.value for c in meters[1]]
    values = {
        "表号/meter_id": "T-1",
        "集中器/dtu_id": "DT",
        "IP/host": "10.9.9.9",
        "端口/port": 502,
        "从站号/unit_id": 7,
        "型号/profile": "reference-prepaid",
        "户号/account_id": "TA",
        "户名/tenant_name": "模板户",
        "电价/tariff": "res",
    }
    for column, header in enumerate(headers, start=1):
        meters.cell(row=2, column=column, value=values.get(str(header)))
    template["tariffs"].append(["res", "居民电价", 0.6])
    out = io.BytesIO()
    template.save(out)
    response = await apply(api, out.getvalue())
    assert response.status_code == 200, response.text
    assert response.json()["new"] == {
        "dtus": 1,
        "meters": 1,
        "tariffs": 1,
        "accounts": 1,
        "bindings": 1,
    }
    account = (await api.get("/api/v1/accounts/TA")).json()
    assert (account["name"], account["tariff_id"]) == ("模板户", "res")


async def test_dry_run_reports_every_problem_by_row_and_column_and_writes_nothing(
    api: httpx.AsyncClient,
) -> None:
    # Already there: meter M1 at address 1 of D1, account A1 (with a tariff).
    first = await apply(api, workbook([GOOD[0]]))
    assert first.status_code == 200, first.text
    before = await counts(api)
    rows: list[list[Any]] = [
        # row 2: unknown profile
        ["N1", "D1", None, None, 5, None, "no-such-meter", None, None, None, None],
        # row 3: duplicate id against what exists (M1 is at address 1, not 9)
        ["M1", "D1", None, None, 9, None, "reference-prepaid", None, None, None, None],
        # row 4: bad address (a DL/T 645 meter needs 12 digits)
        ["N4", "D1", None, None, None, "123", "dlt645-2007", None, None, None, None],
        # row 5: account without tariff
        ["N5", "D1", None, None, 10, None, "reference-prepaid", "NEW-A", "新户", None, None],
        # row 6: bad number (unit id)
        ["N6", "D1", None, None, "x7", None, "reference-prepaid", None, None, None, None],
        # row 7 and 8: the same meter id twice in the file
        ["N7", "D1", None, None, 11, None, "reference-prepaid", None, None, None, None],
        ["N7", "D1", None, None, 12, None, "reference-prepaid", None, None, None, None],
        # row 9: an address taken on the bus (meter M1's)
        ["N9", "D1", None, None, 1, None, "reference-prepaid", None, None, None, None],
        # row 10: a tariff nobody defined
        ["N10", "D1", None, None, 13, None, "reference-prepaid", "A10", "十号", None, "nope"],
        # row 11: a bad price
        ["N11", "D1", None, None, 14, None, "reference-prepaid", "A11", "十一", None, "-1"],
        # row 12: a new dialled DTU without host
        ["N12", "D9", None, None, 1, None, "reference-prepaid", None, None, None, None],
        # row 13: a good row (written only if everything is)
        ["N13", "D1", None, None, 15, None, "reference-prepaid", "A13", "十三", None, 1.2],
    ]
    report = await check(api, workbook(rows))
    assert report["dry_run"] is True
    assert report["applied"] is False
    assert report["rows"] == 12
    found = {(p["row"], p["column"], p["code"]) for p in report["problems"]}
    assert found == {
        (2, "型号", "unknown_profile"),
        (3, "表号", "duplicate_id"),
        (4, "地址", "bad_address"),
        (5, "电价", "no_tariff"),
        (6, "从站号", "bad_number"),
        (8, "表号", "duplicate_id"),
        (9, "地址", "duplicate_address"),
        (10, "电价", "unknown_tariff"),
        (11, "电价", "bad_number"),
        (12, "IP", "missing"),
    }
    assert all(p["sheet"] == "表计" for p in report["problems"])
    assert await counts(api) == before
    # Applying the same file is refused with the same problems; nothing is written.
    refused = await apply(api, workbook(rows))
    assert refused.status_code == 422
    assert refused.headers["content-type"].startswith("application/problem+json")
    body = refused.json()
    assert body["code"] == "import_invalid"
    assert {(e["loc"][2], e["loc"][3], e["type"]) for e in body["errors"]} == found
    assert await counts(api) == before
    assert (await api.get("/api/v1/accounts/A13")).status_code == 404


async def test_apply_writes_everything_and_applying_again_changes_nothing(
    api: httpx.AsyncClient,
) -> None:
    data = workbook(GOOD, tariffs=[["home", "居民电价", 0.6]])
    dry = await check(api, data)
    assert dry["problems"] == []
    assert dry["new"] == {"dtus": 2, "meters": 4, "tariffs": 2, "accounts": 2, "bindings": 3}
    assert await counts(api) == (0, 0, 0)
    response = await apply(api, data)
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["applied"] is True
    assert report["dry_run"] is False
    assert await counts(api) == (4, 2, 2)
    a1 = (await api.get("/api/v1/accounts/A1")).json()
    assert (a1["name"], a1["tariff_id"]) == ("一楼茶叶店", "flat-0.85")
    assert sorted(m["meter_id"] for m in a1["meters"]) == ["M1", "M2"]
    tariff = (await api.get("/api/v1/tariffs/home")).json()
    assert Decimal(tariff["versions"][0]["definition"]["price_per_kwh"]) == Decimal("0.6")
    meter = (await api.get("/api/v1/meters/M3")).json()
    assert (meter["dtu_id"], meter["address"]) == ("D1", "3")
    # The same file again: everything unchanged, nothing new.
    again = await apply(api, data)
    assert again.status_code == 200, again.text
    assert set(again.json()["new"].values()) == {0}
    assert again.json()["unchanged"] == {
        "dtus": 2,
        "meters": 4,
        "tariffs": 2,
        "accounts": 2,
        "bindings": 3,
    }
    assert await counts(api) == (4, 2, 2)


async def test_csv_in_gb18030_imports(api: httpx.AsyncClient) -> None:
    rows = [["C1", "DC", "10.0.0.3", 502, 1, "", "reference-prepaid", "CA", "中文户名", "", "0.6"]]
    response = await apply(api, csv_file(rows), "import.csv")
    assert response.status_code == 200, response.text
    assert response.json()["file_format"] == "csv"
    assert (await api.get("/api/v1/accounts/CA")).json()["name"] == "中文户名"


class FailOn(httpx.AsyncBaseTransport):
    """A service's transport that answers 503 for one path (the service is down for it)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, path: str) -> None:
        self.inner = inner
        self.path = path
        self.failed = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == self.path:
            self.failed += 1
            return httpx.Response(503, json={"detail": "injected outage", "code": "unavailable"})
        return await self.inner.handle_async_request(request)


def break_path(product: Standalone, service: str, path: str) -> FailOn:
    """Make the gateway's calls to one path of a service fail until ``mend`` is called."""
    client: httpx.AsyncClient = getattr(product.upstreams, service).client
    failing = FailOn(client._transport, path)
    client._transport = failing
    return failing


def mend(product: Standalone, *services: str) -> None:
    for service in services:
        client: httpx.AsyncClient = getattr(product.upstreams, service).client
        assert isinstance(client._transport, FailOn)
        client._transport = client._transport.inner


async def test_billing_failing_mid_apply_removes_what_the_collector_registered(
    product: Standalone, api: httpx.AsyncClient
) -> None:
    failing = break_path(product, "billing", "/internal/imports/apply")
    response = await apply(api, good_file())
    assert response.status_code == 503, response.text
    assert "removed again" in response.json()["detail"]
    assert failing.failed == 1
    # The collector's part was written, then taken away: nothing of the import is left.
    assert await counts(api) == (0, 0, 0)
    mend(product, "billing")
    assert (await apply(api, good_file())).status_code == 200
    assert await counts(api) == (4, 2, 2)


async def test_when_the_removal_fails_too_applying_the_same_file_again_finishes(
    product: Standalone, api: httpx.AsyncClient
) -> None:
    # An existing DTU gains a meter: the removal must not take the DTU.
    assert (await apply(api, workbook([GOOD[3]]))).status_code == 200
    break_path(product, "billing", "/internal/imports/apply")
    break_path(product, "collector", "/internal/imports/removal")
    response = await apply(api, good_file())
    assert response.status_code == 503
    assert "apply the same file again" in response.json()["detail"]
    # Half done: the meters are registered, the accounts are not.
    assert await counts(api) == (4, 2, 0)
    mend(product, "billing", "collector")
    again = await apply(api, good_file())
    assert again.status_code == 200, again.text
    assert again.json()["unchanged"]["meters"] == 4
    assert again.json()["new"]["accounts"] == 2
    assert await counts(api) == (4, 2, 2)


async def test_compensating_removal_keeps_a_dtu_that_was_there(
    product: Standalone, api: httpx.AsyncClient
) -> None:
    assert (await apply(api, workbook([GOOD[3]]))).status_code == 200
    break_path(product, "billing", "/internal/imports/apply")
    assert (await apply(api, good_file())).status_code == 503
    assert await counts(api) == (1, 1, 0)
    assert [d["id"] for d in (await api.get("/api/v1/dtus")).json()["items"]] == ["D2"]


async def test_the_other_problem_kinds_unreadable_bad_value_conflict_too_many(
    api: httpx.AsyncClient,
) -> None:
    # Not a spreadsheet at all.
    garbage = await check(api, b"\x00\x01\x02 not a spreadsheet", "import.xlsx")
    assert [p["code"] for p in garbage["problems"]] == ["unreadable"]
    rows: list[list[Any]] = [
        # row 2 and 3: one DTU with two different hosts
        ["K1", "KD", "10.0.0.8", 502, 1, None, "reference-prepaid", None, None, None, None],
        ["K2", "KD", "10.0.0.9", 502, 2, None, "reference-prepaid", None, None, None, None],
        # row 4: a phone number that cannot be one
        ["K4", "KD", None, None, 4, None, "reference-prepaid", "KA", "户", "call me", 1],
    ]
    report = await check(api, workbook(rows))
    found = {(p["row"], p["column"], p["code"]) for p in report["problems"]}
    assert found == {(3, "IP", "conflict"), (4, "电话", "bad_value")}
    # 248 DL/T 645 meters on one RS-485 bus behind one DTU: one more than a bus takes.
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append([*HEADER, "接入方式"])
    for n in range(1, 249):
        address = f"{n:012d}"
        sheet.append(
            [f"F{n}", "FULL", "10.0.1.1", 9000, None, address, "dlt645-2007"]
            + [None] * 4
            + ["rtu-over-tcp"]
        )
    out = io.BytesIO()
    book.save(out)
    full = await check(api, out.getvalue())
    assert {(p["row"], p["column"], p["code"]) for p in full["problems"]} == {
        (249, "集中器", "too_many")
    }
    assert await counts(api) == (0, 0, 0)
