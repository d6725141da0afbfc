"""The standalone product with its fake providers: a tenant's account is cut for want of
credit, each channel's order is paid through the fake provider, whose signed notification
reaches the product's public port, credits once, and the relay closes by itself."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import httpx
from standalone.app import Standalone
from testkit import wait_until

from .conftest import ADMIN_PASSWORD, product_on_a_socket


async def test_each_channel_pays_through_the_fake_and_the_relay_closes(
    backend: tuple[str, str], bus_prefix: str, tmp_path: Path
) -> None:
    async with product_on_a_socket(backend, bus_prefix, tmp_path) as (running, url):
        await _pay_every_channel(running, url)


async def _pay_every_channel(running: Standalone, url: str) -> None:
    assert running.demo_payments is not None
    assert running.demo_order is not None  # what make run prints: a QR code's URL to open
    account = running.demo_order["account_id"]
    meter_id = account.removeprefix("ACC-")
    async with (
        httpx.AsyncClient(base_url=url, timeout=30) as api,
        httpx.AsyncClient(timeout=30, follow_redirects=True) as phone,
    ):
        token = await api.post(
            "/api/v1/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD}
        )
        api.headers["Authorization"] = f"Bearer {token.json()['access_token']}"

        async def relay() -> str | None:
            return str((await api.get(f"/api/v1/meters/{meter_id}")).json()["relay"])

        async def tripped() -> bool:
            return await relay() == "open"

        await wait_until(tripped, timeout=90)
        before = Decimal((await api.get(f"/api/v1/accounts/{account}")).json()["balance"])
        channels = await api.get("/api/v1/payment-channels")
        assert {c["provider"]: c["enabled"] for c in channels.json()} == {
            "wechatpay": True,
            "alipay": True,
        }
        # The demo order first (wechat_native, 50.00), then one order per other channel.
        paid_orders = [running.demo_order["out_trade_no"]]
        assert (await phone.get(running.demo_order["pay_url"])).status_code == 200
        for channel, field in [
            ("wechat_jsapi", None),
            ("wechat_h5", "h5_url"),
            ("alipay_qr", "qr_code"),
            ("alipay_wap", "pay_url"),
        ]:
            body = {"channel": channel, "amount": "10.00"}
            if channel == "wechat_jsapi":
                body["openid"] = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
            answer = await api.post(f"/api/v1/accounts/{account}/orders", json=body)
            assert answer.status_code == 201, answer.text
            order = answer.json()
            pay = (
                order[field]
                if field
                else f"{running.demo_payments.url}/pay/wechatpay/{order['out_trade_no']}"
            )
            assert (await phone.get(pay)).status_code == 200
            paid_orders.append(order["out_trade_no"])

        async def all_paid() -> bool:
            for no in paid_orders:
                if (await api.get(f"/api/v1/orders/{no}")).json()["status"] != "paid":
                    return False
            return True

        await wait_until(all_paid, timeout=30)

        async def closed() -> bool:
            return await relay() == "closed"

        await wait_until(closed, timeout=60)
        # A notification delivered again (providers do) credits nothing more.
        order = running.demo_order["out_trade_no"]
        note = (
            await phone.get(f"{running.demo_payments.url}/fake/notifications/wechatpay/{order}")
        ).json()[0]
        again = await api.post(
            "/api/v1/webhooks/wechatpay", content=note["body"].encode(), headers=note["headers"]
        )
        assert again.status_code == 204

        async def provider_payments() -> list[str]:
            items = (await api.get(f"/api/v1/accounts/{account}/payments")).json()["items"]
            return sorted(p["amount"] for p in items if p["method"] in {"wechat", "alipay"})

        await wait_until(provider_payments, timeout=30)
        assert await provider_payments() == [
            "10.00",
            "10.00",
            "10.00",
            "10.00",
            "50.00",
        ]
        # A provider payment's receipt (收据) names the provider's transaction, no cashier.
        items = (await api.get(f"/api/v1/accounts/{account}/payments")).json()["items"]
        wechat = next(p for p in items if p["method"] == "wechat" and p["amount"] == "50.00")
        receipt = (await api.get(f"/api/v1/payments/{wechat['id']}/receipt")).json()
        assert (receipt["channel"], receipt["amount_in_words"]) == ("wechat", "伍拾元整")
        assert receipt["transaction_id"] == wechat["reference"]
        assert (receipt["cashier"], receipt["counter_receipt"]) == (None, None)
        after = Decimal((await api.get(f"/api/v1/accounts/{account}")).json()["balance"])
        # Consumption goes on meanwhile; 90.00 in, and never 90.00 twice.
        assert before < after <= before + Decimal("90.00")

        # A refund through the provider is an audited refund in the ledger, keyed by its number.
        refund = await api.post(
            f"/api/v1/orders/{paid_orders[-1]}/refunds", json={"amount": "10.00", "reason": "test"}
        )
        assert refund.status_code == 201, refund.text
        refund_no = refund.json()["out_refund_no"]

        async def refunded() -> bool:
            order = (await api.get(f"/api/v1/orders/{paid_orders[-1]}")).json()
            return bool(order["status"] == "refunded")

        await wait_until(refunded, timeout=30)
        ledger = (await api.get(f"/api/v1/accounts/{account}/ledger")).json()["items"]
        refunds = [line for line in ledger if line["kind"] == "refund"]
        assert [(line["operation_key"], line["amount"]) for line in refunds] == [
            (f"refund:{refund_no}", "-10.00")
        ]
        audit = (await api.get("/api/v1/audit")).json()["items"]
        assert any(entry["action"] == "order.refund" for entry in audit)
        too_much = await api.post(
            f"/api/v1/orders/{paid_orders[0]}/refunds", json={"amount": "50.01", "reason": "x"}
        )
        assert too_much.status_code == 422
