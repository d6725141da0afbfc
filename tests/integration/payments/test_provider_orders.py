"""Provider orders end to end over HTTP: each channel pays through the fake providers, the
signed notification reaches the gateway's public webhook and credits exactly once."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import time
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode
from zoneinfo import ZoneInfo

import pytest
from Crypto.Hash import SHA256
from Crypto.PublicKey import RSA
from Crypto.Signature import pkcs1_15

from .conftest import KEYS, PaymentsRig

CHANNELS = ["wechat_native", "wechat_jsapi", "wechat_h5", "alipay_qr", "alipay_wap"]
OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"


async def _true_when(value: object) -> bool:
    return bool(value)


def _provider(channel: str) -> str:
    return "wechatpay" if channel.startswith("wechat") else "alipay"


def _pay_url(rig: PaymentsRig, order: dict[str, Any]) -> str:
    for name in ("code_url", "h5_url", "qr_code", "pay_url"):
        if order.get(name):
            return str(order[name])
    # jsapi: the WeChat page pays with the signed parameters; the fake's pay page stands in.
    return f"{rig.fake_url}/pay/wechatpay/{order['out_trade_no']}"


async def _paid(rig: PaymentsRig, out_trade_no: str) -> None:
    async def paid() -> bool:
        return await rig.status(out_trade_no) == "paid"

    await rig.eventually(paid)


async def _notification(rig: PaymentsRig, provider: str, out_trade_no: str) -> dict[str, Any]:
    sent = (await rig.provider.get(f"/fake/notifications/{provider}/{out_trade_no}")).json()
    assert sent, "the fake kept no notification"
    return dict(sent[0])


async def _post_webhook(rig: PaymentsRig, provider: str, note: dict[str, Any]) -> Any:
    return await rig.public.post(
        f"/api/v1/webhooks/{provider}", content=note["body"].encode(), headers=note["headers"]
    )


@pytest.mark.parametrize("channel", CHANNELS)
async def test_each_channel_pays_and_credits_once(rig: PaymentsRig, channel: str) -> None:
    extra = {"openid": OPENID} if channel == "wechat_jsapi" else {}
    order = await rig.order(channel, "50.00", **extra)
    assert order["status"] == "pending"
    assert order["amount"] == "50.00"
    if channel == "wechat_jsapi":
        jsapi = order["jsapi"]
        message = (
            f"{jsapi['appId']}\n{jsapi['timeStamp']}\n{jsapi['nonceStr']}\n{jsapi['package']}\n"
        )
        pkcs1_15.new(KEYS.merchant.public_key()).verify(
            SHA256.new(message.encode()), base64.b64decode(jsapi["paySign"])
        )
    opened = await rig.provider.get(_pay_url(rig, order), follow_redirects=True)
    assert opened.status_code == 200, opened.text
    await _paid(rig, order["out_trade_no"])
    shown = (await rig.payments.get(f"/internal/orders/{order['out_trade_no']}")).json()
    assert shown["transaction_id"]
    assert [c["amount"] for c in await rig.credited(1)] == ["50.00"]
    assert rig.credits[0]["method"] == ("wechat" if channel.startswith("wechat") else "alipay")
    assert rig.credits[0]["reference"] == shown["transaction_id"]
    await rig.eventually(lambda: _true_when(rig.fake.sent))
    # The provider heard "received" exactly as it expects (WeChat: 204; Alipay: "success").
    assert rig.fake.sent == [(_provider(channel), 204 if channel.startswith("wechat") else 200)]


@pytest.mark.parametrize("channel", ["wechat_native", "alipay_qr"])
async def test_racing_duplicate_notifications_credit_once(rig: PaymentsRig, channel: str) -> None:
    provider = _provider(channel)
    order = await rig.order(channel, "30.00")
    await rig.provider.get(_pay_url(rig, order), params={"notify": "false"})
    note = await _notification(rig, provider, order["out_trade_no"])
    answers = await asyncio.gather(*(_post_webhook(rig, provider, note) for _ in range(20)))
    if provider == "wechatpay":
        assert {a.status_code for a in answers} == {204}
    else:
        assert {(a.status_code, a.text) for a in answers} == {(200, "success")}
    assert await rig.status(order["out_trade_no"]) == "paid"
    await rig.credited(1)
    payments = await rig.payments.get("/internal/payments", params={"account_id": "shop:12"})
    assert len(payments.json()["items"]) == 1
    # Later retries (the provider resends even after success) still change nothing.
    again = await _post_webhook(rig, provider, note)
    assert again.status_code in {200, 204}
    await rig.credited(1)


@pytest.mark.parametrize("channel", ["wechat_native", "alipay_qr"])
async def test_an_amount_mismatch_is_flagged_not_credited(rig: PaymentsRig, channel: str) -> None:
    order = await rig.order(channel, "50.00")
    await rig.provider.get(_pay_url(rig, order), params={"fen": 1})

    async def answered() -> bool:
        return bool(rig.fake.sent)

    await rig.eventually(answered)
    # Answered received (retrying cannot fix it) but nothing credited; an operator is told.
    assert rig.fake.sent[0][1] in {200, 204}
    await rig.credited(0)
    assert await rig.status(order["out_trade_no"]) == "pending"
    issues = (await rig.payments.get("/internal/payment-issues")).json()["items"]
    assert [(i["kind"], i["out_trade_no"]) for i in issues] == [
        ("amount_mismatch", order["out_trade_no"])
    ]


def _refused_count(metrics: str, provider: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(
            f'prepaid_payments_notifications_total{{outcome="refused",provider="{provider}"}}'
        ):
            return float(line.split()[-1])
    return 0.0


@pytest.mark.parametrize(
    "forgery", ["reserialised", "stale", "signtest", "unknown serial", "wrong key", "no headers"]
)
async def test_a_forged_or_stale_wechat_notification_is_refused(
    rig: PaymentsRig, forgery: str, caplog: pytest.LogCaptureFixture
) -> None:
    order = await rig.order("wechat_native")
    await rig.provider.get(_pay_url(rig, order), params={"notify": "false"})
    note = await _notification(rig, "wechatpay", order["out_trade_no"])
    headers, body = dict(note["headers"]), note["body"]
    if forgery == "reserialised":
        body = body.replace(", ", ",")
    elif forgery == "stale":
        old = int(time.time()) - 301
        headers = rig.fake.wechat_signed_headers(body.encode(), at=old)
    elif forgery == "signtest":
        headers["Wechatpay-Signature"] = "WECHATPAY/SIGNTEST/" + headers["Wechatpay-Signature"]
    elif forgery == "unknown serial":
        headers["Wechatpay-Serial"] = "0123456789ABCDEF"
    elif forgery == "wrong key":
        original = rig.fake.keys
        rig.fake.keys = dataclasses.replace(original, wechat_platform=RSA.generate(2048))
        headers = rig.fake.wechat_signed_headers(body.encode())
        rig.fake.keys = original
    elif forgery == "no headers":
        headers = {"Content-Type": "application/json"}
    before = _refused_count((await rig.payments.get("/metrics")).text, "wechatpay")
    answer = await rig.public.post(
        "/api/v1/webhooks/wechatpay", content=body.encode(), headers=headers
    )
    assert answer.status_code == 401
    assert answer.json()["code"] == "FAIL"  # WeChat Pay will retry; a forger learns nothing
    await rig.credited(0)
    assert await rig.status(order["out_trade_no"]) == "pending"
    after = _refused_count((await rig.payments.get("/metrics")).text, "wechatpay")
    assert after == before + 1
    refusals = [r for r in caplog.records if "refused a wechatpay notification" in r.message]
    assert len(refusals) == 1
    assert KEYS.api_v3_key.decode() not in caplog.text


@pytest.mark.parametrize(
    "forgery", ["app key", "changed amount", "other seller", "not paid", "no sign"]
)
async def test_a_forged_alipay_notification_is_refused(rig: PaymentsRig, forgery: str) -> None:
    order = await rig.order("alipay_qr", "50.00")
    await rig.provider.get(_pay_url(rig, order), params={"notify": "false"})
    note = await _notification(rig, "alipay", order["out_trade_no"])
    params = dict(parse_qsl(note["body"], keep_blank_values=True))

    def resign(fields: dict[str, str], key: RSA.RsaKey) -> dict[str, str]:
        kept = {k: v for k, v in fields.items() if k not in {"sign", "sign_type"} and v != ""}
        content = "&".join(f"{k}={kept[k]}" for k in sorted(kept)).encode()
        signature = base64.b64encode(pkcs1_15.new(key).sign(SHA256.new(content))).decode()
        return {**fields, "sign": signature, "sign_type": "RSA2"}

    expected = (400, "failure")
    if forgery == "app key":
        params = resign(params, KEYS.alipay_app)  # our own key, not Alipay's
    elif forgery == "changed amount":
        params["total_amount"] = "0.01"
    elif forgery == "other seller":
        # Alipay really signed it, for another merchant: received, flagged, not credited.
        params = resign({**params, "seller_id": "2088999999999999"}, KEYS.alipay)
        expected = (200, "success")
    elif forgery == "not paid":
        params = resign({**params, "trade_status": "WAIT_BUYER_PAY"}, KEYS.alipay)
        expected = (200, "success")
    elif forgery == "no sign":
        del params["sign"]
    answer = await rig.public.post(
        "/api/v1/webhooks/alipay",
        content=urlencode(params).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert (answer.status_code, answer.text) == expected
    await rig.credited(0)
    assert await rig.status(order["out_trade_no"]) == "pending"
    if forgery == "other seller":
        issues = (await rig.payments.get("/internal/payment-issues")).json()["items"]
        assert [i["kind"] for i in issues] == ["not_our_merchant"]


async def test_notifications_signed_with_the_public_key_id_credit(rig: PaymentsRig) -> None:
    rig.fake.wechat_signs_with = "public_key"
    order = await rig.order("wechat_native", "12.50")
    await rig.provider.get(_pay_url(rig, order))
    await _paid(rig, order["out_trade_no"])
    assert [c["amount"] for c in await rig.credited(1)] == ["12.50"]


async def test_a_provider_answer_not_signed_by_the_provider_is_refused(rig: PaymentsRig) -> None:
    original = rig.fake.keys
    rig.fake.keys = dataclasses.replace(
        original, wechat_platform=RSA.generate(2048), alipay=RSA.generate(2048)
    )
    for channel in ("wechat_native", "alipay_qr"):
        answer = await rig.payments.post(
            "/internal/orders",
            json={"account_id": "A-1", "channel": channel, "amount": "5.00", "operator": "ann"},
        )
        assert answer.status_code == 502, answer.text
        assert "refused" in answer.json()["detail"]
    rig.fake.keys = original


@pytest.mark.parametrize("channel", ["wechat_native", "alipay_qr"])
async def test_a_payment_whose_notification_is_lost_is_found_by_asking(
    rig: PaymentsRig, channel: str
) -> None:
    order = await rig.order(channel, "20.00")
    await rig.provider.get(_pay_url(rig, order), params={"notify": "false"})
    synced = await rig.payments.post(f"/internal/orders/{order['out_trade_no']}/sync")
    assert synced.json()["status"] == "paid"
    await rig.credited(1)
    # The notification arriving after all is a duplicate.
    note = await _notification(rig, _provider(channel), order["out_trade_no"])
    assert (await _post_webhook(rig, _provider(channel), note)).status_code in {200, 204}
    await rig.credited(1)


@pytest.mark.parametrize("rig", [{"lifetime": 1}], indirect=True)
async def test_the_loop_credits_a_silent_payment_and_expires_an_unpaid_order(
    rig: PaymentsRig,
) -> None:
    paid = await rig.order("wechat_native", "8.00")
    unpaid = await rig.order("alipay_qr", "9.00")
    await rig.provider.get(_pay_url(rig, paid), params={"notify": "false"})

    async def settled() -> bool:
        return (
            await rig.status(paid["out_trade_no"]),
            await rig.status(unpaid["out_trade_no"]),
        ) == (
            "paid",
            "expired",
        )

    await rig.eventually(settled, timeout=15)
    assert [c["amount"] for c in await rig.credited(1)] == ["8.00"]


@pytest.mark.parametrize("rig", [{"lifetime": 1}], indirect=True)
async def test_an_expired_wechat_order_is_closed_at_the_provider(rig: PaymentsRig) -> None:
    order = await rig.order("wechat_native", "8.00")

    async def expired() -> bool:
        return await rig.status(order["out_trade_no"]) == "expired"

    await rig.eventually(expired, timeout=15)
    opened = await rig.provider.get(_pay_url(rig, order))
    assert opened.status_code == 409  # closed there: the payer can no longer pay it


@pytest.mark.parametrize("channel", ["wechat_native", "alipay_qr"])
async def test_a_refund_goes_through_the_provider(rig: PaymentsRig, channel: str) -> None:
    order = await rig.order(channel, "40.00")
    await rig.provider.get(_pay_url(rig, order))
    await _paid(rig, order["out_trade_no"])
    no = order["out_trade_no"]
    too_much = await rig.payments.post(
        f"/internal/orders/{no}/refunds",
        json={"amount": "40.01", "reason": "moved out", "operator": "ann"},
    )
    assert too_much.status_code == 422
    prepared = await rig.payments.post(
        f"/internal/orders/{no}/refunds",
        json={"amount": "40.00", "reason": "moved out", "operator": "ann"},
    )
    assert prepared.status_code == 201, prepared.text
    refund_no = prepared.json()["out_refund_no"]
    sent = await rig.payments.post(f"/internal/refunds/{refund_no}/send")
    assert sent.status_code == 200, sent.text

    async def refunded() -> bool:
        refund = (await rig.payments.get(f"/internal/refunds/{refund_no}")).json()
        return bool(refund["status"] == "succeeded")

    # Alipay answers at once; WeChat Pay says so in a signed REFUND.SUCCESS notification.
    await rig.eventually(refunded)
    assert await rig.status(no) == "refunded"


@pytest.mark.parametrize("provider", ["wechatpay", "alipay"])
async def test_the_daily_bill_reports_every_difference(rig: PaymentsRig, provider: str) -> None:
    channel = "wechat_native" if provider == "wechatpay" else "alipay_qr"
    agreed = await rig.order(channel, "10.00")
    lost = await rig.order(channel, "20.00")
    await rig.provider.get(_pay_url(rig, agreed))
    await _paid(rig, agreed["out_trade_no"])
    # Paid there, but the notification never came and nobody asked yet: pending here.
    await rig.provider.get(_pay_url(rig, lost), params={"notify": "false"})
    day = datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()
    answer = await rig.payments.post(f"/internal/bills/{provider}/{day}")
    assert answer.status_code == 200, answer.text
    check = answer.json()
    assert check["trades"] == 2
    assert [(d["kind"], d["out_trade_no"]) for d in check["differences"]] == [
        ("paid_there_not_here", lost["out_trade_no"])
    ]
    issues = (await rig.payments.get("/internal/payment-issues")).json()["items"]
    assert [(i["kind"], i["out_trade_no"]) for i in issues] == [
        ("bill_paid_there_not_here", lost["out_trade_no"])
    ]
    # Checking the same bill again raises nothing new.
    await rig.payments.post(f"/internal/bills/{provider}/{day}")
    assert len((await rig.payments.get("/internal/payment-issues")).json()["items"]) == 1


async def test_a_rotated_platform_certificate_is_read_when_its_serial_first_appears(
    rig: PaymentsRig,
) -> None:
    new_key, new_serial = RSA.generate(2048), "7A1B2C3D4E5F60718293A4B5C6D7E8F901234567"
    original = rig.fake.keys
    rig.fake.keys = dataclasses.replace(
        original, wechat_platform=new_key, wechat_platform_serial=new_serial
    )
    try:
        # The new certificate arrives in the directory (an operator, or a download job).
        certs = rig.merchant_dir / "wechatpay-platform-certs"
        (certs / f"{new_serial}.pem").write_bytes(new_key.public_key().export_key())
        order = await rig.order("wechat_native", "7.00")
        await rig.provider.get(_pay_url(rig, order))
        await _paid(rig, order["out_trade_no"])
        assert [c["amount"] for c in await rig.credited(1)] == ["7.00"]
    finally:
        rig.fake.keys = original


async def test_a_refund_whose_notification_is_lost_or_never_arrived_is_settled_by_asking(
    rig: PaymentsRig,
) -> None:
    order = await rig.order("wechat_native", "30.00")
    await rig.provider.get(_pay_url(rig, order))
    await _paid(rig, order["out_trade_no"])
    no = order["out_trade_no"]

    async def refund(amount: str) -> str:
        prepared = await rig.payments.post(
            f"/internal/orders/{no}/refunds",
            json={"amount": amount, "reason": "moved out", "operator": "ann"},
        )
        assert prepared.status_code == 201, prepared.text
        return str(prepared.json()["out_refund_no"])

    # Lost: WeChat Pay took it, its notification never came; asking finds it succeeded.
    rig.fake.notify = False
    lost = await refund("10.00")
    assert (await rig.payments.post(f"/internal/refunds/{lost}/send")).json()[
        "status"
    ] == "processing"
    synced = await rig.payments.post(f"/internal/refunds/{lost}/sync")
    assert synced.json()["status"] == "succeeded"
    # Never arrived: the provider was down when asked; asking finds nothing and sends it
    # again under the same number, which the provider takes once.
    rig.fake.refunds_down = True
    unsent = await refund("20.00")
    assert (await rig.payments.post(f"/internal/refunds/{unsent}/send")).status_code == 502
    rig.fake.refunds_down = False
    assert (await rig.payments.post(f"/internal/refunds/{unsent}/sync")).json()[
        "status"
    ] == "processing"
    assert (await rig.payments.post(f"/internal/refunds/{unsent}/sync")).json()[
        "status"
    ] == "succeeded"
    assert await rig.status(no) == "refunded"
    held = rig.fake.orders[("wechatpay", no)]
    assert held.refunded_fen == 3000  # each refund taken once
