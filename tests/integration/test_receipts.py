"""Receipts (收据) over the public API on both backends (issue 19): a cashier takes cash at
the counter and the receipt, as JSON and as a PDF (its text read back with pypdf), names the
site, the account, tenant and room, the amount in figures and in Chinese capitals, the
cashier, the time in the site's zone and the balance right after; a tenant sees only their
own account's receipts; a reversed payment's receipt says it is void."""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pypdf
import pytest
from prepaid_common.bus.rabbit import RabbitBus
from pydantic import SecretStr
from standalone.app import Standalone
from standalone.settings import StandaloneSettings
from testkit import wait_until

ADMIN = "receipts-admin-pass"
SITE = "翠苑物业"
SHANGHAI = ZoneInfo("Asia/Shanghai")


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
            token_secret=SecretStr("receipts-secret-0123456789-abcdefgh"),
            admin_password=SecretStr(ADMIN),
            site_name=SITE,
        )
    )
    await product.start()
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=product.app), base_url="http://test", timeout=60
    )
    client.headers["Authorization"] = await bearer(client, "admin", ADMIN)
    yield client
    await client.aclose()
    await product.stop()
    if isinstance(product.bus, RabbitBus):
        await product.bus.delete_topology()


async def bearer(api: httpx.AsyncClient, username: str, password: str) -> str:
    login = await api.post("/api/v1/auth/token", data={"username": username, "password": password})
    assert login.status_code == 200, login.text
    return f"Bearer {login.json()['access_token']}"


async def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


async def user(api: httpx.AsyncClient, username: str, role: str, *accounts: str) -> dict[str, str]:
    password = f"{username}-password-1"
    body = {"username": username, "password": password, "role": role, "account_ids": [*accounts]}
    await ok(await api.post("/api/v1/users", json=body), 201)
    return {"Authorization": await bearer(api, username, password)}


async def settle(api: httpx.AsyncClient, account_id: str, expected: str) -> None:
    async def there() -> bool:
        account = await ok(await api.get(f"/api/v1/accounts/{account_id}"))
        return Decimal(account["balance"]) == Decimal(expected)

    await wait_until(there, timeout=30)


def pdf_text(data: bytes) -> str:
    assert data.startswith(b"%PDF")
    reader = pypdf.PdfReader(io.BytesIO(data))
    return "".join(page.extract_text() for page in reader.pages)


async def test_a_counter_top_up_has_its_receipt_as_json_and_pdf_and_void_when_reversed(
    api: httpx.AsyncClient,
) -> None:
    # A tenant with old debt: a tenth of each top-up pays it, so the balance after is not the
    # amount paid.
    account = {"id": "R1", "name": "一楼茶叶店", "price_per_kwh": "1.00", "debt_share": "0.1"}
    await ok(await api.post("/api/v1/accounts", json=account), 201)
    await ok(await api.post("/api/v1/accounts", json={**account, "id": "R2", "name": "花店"}), 201)
    profile = {"tenant_name": "王芳", "building": "A", "floor": "1", "room": "102"}
    await ok(await api.put("/api/v1/accounts/R1/profile", json=profile))
    arrears = {"amount": "10.00", "key": "old", "reason": "旧欠费"}
    await ok(await api.post("/api/v1/accounts/R1/arrears", json=arrears), 201)
    cashier = await user(api, "cashier1", "operator")

    paid = await ok(
        await api.post(
            "/api/v1/accounts/R1/top-ups",
            json={"amount": "1004.05", "receipt": "R-0001"},
            headers=cashier,
        ),
        201,
    )
    await settle(api, "R1", "994.05")  # 10.00 of it paid the old debt
    # Another top-up later: the receipt still says the balance right after its own.
    await ok(
        await api.post("/api/v1/accounts/R1/top-ups", json={"amount": "20.00", "receipt": "R-2"}),
        201,
    )
    await settle(api, "R1", "1014.05")

    path = f"/api/v1/payments/{paid['id']}/receipt"
    receipt = await ok(await api.get(path))
    assert receipt["receipt_no"] == "SJ" + paid["id"].replace("-", "")[:16].upper()
    assert (await ok(await api.get(path)))["receipt_no"] == receipt["receipt_no"]
    assert receipt["site_name"] == SITE
    assert (receipt["account_id"], receipt["account_name"]) == ("R1", "一楼茶叶店")
    assert [receipt[f] for f in ("tenant_name", "building", "floor", "room")] == [
        "王芳",
        "A",
        "1",
        "102",
    ]
    assert receipt["amount"] == "1004.05"
    assert receipt["amount_in_words"] == "壹仟零肆元零伍分"
    assert receipt["channel"] == "cash"
    assert (receipt["cashier"], receipt["counter_receipt"]) == ("cashier1", "R-0001")
    assert receipt["transaction_id"] is None
    paid_at = datetime.fromisoformat(receipt["paid_at"])
    assert paid_at.utcoffset() == SHANGHAI.utcoffset(paid_at.replace(tzinfo=None))
    assert paid_at == datetime.fromisoformat(paid["created_at"])
    assert receipt["timezone"] == "Asia/Shanghai"
    assert receipt["status"] == "credited"
    assert (receipt["balance_after"], receipt["to_arrears"]) == ("994.05", "10.00")
    assert receipt["reversal"] is None

    printed = await api.get(path, params={"format": "pdf"})
    assert printed.status_code == 200, printed.text
    assert printed.headers["content-type"] == "application/pdf"
    assert receipt["receipt_no"] in printed.headers["content-disposition"]
    text = pdf_text(printed.content)
    for shown in (
        SITE,
        "收据",
        receipt["receipt_no"],
        "王芳",
        "102",
        "1,004.05",
        "壹仟零肆元零伍分",
        "现金",
        "cashier1",
        "R-0001",
        "994.05",
        paid_at.strftime("%Y-%m-%d %H:%M:%S"),  # the site's wall clock
    ):
        assert shown in text, shown
    assert "作废" not in text
    by_accept = await api.get(path, headers={"Accept": "application/pdf"})
    assert by_accept.content.startswith(b"%PDF")

    # Tenants: their own account's receipt, and nobody else's (as if it did not exist).
    own = await user(api, "tenant-r1", "tenant", "R1")
    other = await user(api, "tenant-r2", "tenant", "R2")
    assert (await ok(await api.get(path, headers=own)))["receipt_no"] == receipt["receipt_no"]
    assert (await api.get(path, params={"format": "pdf"}, headers=own)).status_code == 200
    hidden = await api.get(path, headers=other)
    assert hidden.status_code == 404
    assert "R1" not in hidden.text
    unknown = await api.get("/api/v1/payments/0b6f1d9e-5c3a-4e4b-9a51-2f1c8d7e6a90/receipt")
    assert unknown.status_code == 404
    assert (await api.get("/api/v1/payments/a.b/receipt")).status_code == 422
    assert (await api.get(path, params={"format": "xlsx"})).status_code == 422

    # Reversed (冲正): the receipt is void and says by whom, when and why.
    ledger = await ok(await api.get("/api/v1/accounts/R1/ledger", params={"limit": 100}))
    top_up = next(i for i in ledger["items"] if i["operation_key"] == f"payment:{paid['id']}")
    reversal = await ok(
        await api.post(
            f"/api/v1/transactions/{top_up['transaction_id']}/reversal",
            json={"reason": "收错户号"},
        ),
        201,
    )
    void = await ok(await api.get(path, headers=own))
    assert void["status"] == "reversed"
    assert void["reversal"]["transaction_id"] == reversal["transaction_id"]
    assert (void["reversal"]["operator"], void["reversal"]["reason"]) == ("admin", "收错户号")
    assert void["balance_after"] == "994.05"  # what the receipt said then, still
    text = pdf_text((await api.get(path, params={"format": "pdf"})).content)
    assert "作废" in text
    assert "冲正" in text
    assert "收错户号" in text
    assert re.search(r"VOID", text)
