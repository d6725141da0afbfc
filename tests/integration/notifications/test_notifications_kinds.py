"""Each kind of notification, received at the fake providers as the real ones would get it:
an Aliyun SendSms with a valid RPC signature, a WeChat template message sent with a token
the fake issued, a mail through SMTP with the right login."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from prepaid_common.contracts import (
    Message,
    MeterStatusV1,
    PaymentSucceededV1,
    RelayRequestedV1,
)
from prepaid_common.contracts.messages import BalanceLowV1, CutImminentV1, PaymentIssueV1

from .conftest import (
    OPERATOR_EMAIL,
    OPERATOR_OPENID,
    OPERATOR_PHONE,
    TENANT_EMAIL,
    TENANT_OPENID,
    TENANT_PHONE,
    Rig,
    running_rig,
)

AT = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)

# kind -> (the message that says it, a word its text must carry, tenant's or operators')
SOURCES: dict[str, tuple[Message, str, bool]] = {
    "low_balance_1": (
        BalanceLowV1(account_id="A1", level=1, balance=Decimal("8"), line=Decimal("10"), at=AT),
        "10.00",
        True,
    ),
    "low_balance_2": (
        BalanceLowV1(account_id="A1", level=2, balance=Decimal("-1"), line=Decimal("0"), at=AT),
        "-1.00",
        True,
    ),
    "cut_imminent": (
        CutImminentV1(account_id="A1", meter_id="M1", balance=Decimal("-2"), at=AT),
        "友好时段",
        True,
    ),
    "supply_cut": (
        RelayRequestedV1(
            request_id="r1", meter_id="M1", account_id="A1", action="trip", reason="short", at=AT
        ),
        "已停电",
        True,
    ),
    "supply_restored": (
        RelayRequestedV1(
            request_id="r2", meter_id="M1", account_id="A1", action="close", reason="paid", at=AT
        ),
        "恢复供电",
        True,
    ),
    "top_up_received": (
        PaymentSucceededV1(
            payment_id="p1",
            account_id="A1",
            amount=Decimal("50"),
            method="wechat",
            reference="t1",
            at=AT,
        ),
        "50.00",
        True,
    ),
    "meter_offline": (
        MeterStatusV1(meter_id="M7", dtu_id="D2", online=False, at=AT, reason="no answer"),
        "M7",
        False,
    ),
    "dtu_offline": (
        MeterStatusV1(
            meter_id="M7", dtu_id="D2", online=False, at=AT, reason="DTU offline: link lost"
        ),
        "D2",
        False,
    ),
    "payment_attention": (
        PaymentIssueV1(
            issue_id="amount_differs:wechatpay:T1:X1",
            kind="amount_differs",
            provider="wechatpay",
            out_trade_no="T1",
            detail="paid 49.00, ordered 50.00",
            at=AT,
        ),
        "T1",
        False,
    ),
}


@pytest.mark.parametrize("kind", list(SOURCES))
async def test_each_kind_is_received_at_every_channel(sqlite_rig: Rig, kind: str) -> None:
    rig = sqlite_rig
    message, word, tenant = SOURCES[kind]
    await rig.prefer("A1")
    await rig.publish(message)
    [sms] = await rig.received("aliyun")
    [wechat] = await rig.received("wechat")
    [mail] = await rig.received("smtp")
    phone, openid, email = (
        (TENANT_PHONE, TENANT_OPENID, TENANT_EMAIL)
        if tenant
        else (OPERATOR_PHONE, OPERATOR_OPENID, OPERATOR_EMAIL)
    )
    # Aliyun: a mainland number without +86, the signature checked, the template filled.
    assert sms["phone"] == phone.removeprefix("+86")
    assert sms["sign_name"] == "预付费电"
    assert sms["template"] == ("SMS_200" if kind == "supply_cut" else "SMS_100")
    assert sms["params"]
    assert wechat["openid"] == openid
    assert wechat["template"] == "TPL_general"
    assert word in wechat["data"]["remark"]
    assert mail["to"] == [email]
    assert word in mail["text"]
    assert rig.fake.refused == []
    sent = await rig.settled(3)
    assert {m["kind"] for m in sent} == {kind}
    assert {m["status"] for m in sent} == {"sent"}
    assert {m["channel"] for m in sent} == {"sms", "wechat", "email"}
    answers = {m["channel"]: m["provider_answer"] for m in sent}
    assert (
        answers["sms"]
        == f"aliyun: BizId={sms['biz_id']} RequestId="
        + (answers["sms"].rpartition("RequestId=")[2])
    )
    assert answers["wechat"] == f"wechat_mp: msgid={wechat['msgid']}"


async def test_tencent_sms_is_received_with_a_valid_tc3_signature(
    backend: tuple[str, str], bus_prefix: str, tmp_path: Path
) -> None:
    async with running_rig(backend, bus_prefix, tmp_path, sms="tencent") as rig:
        await rig.prefer("A1", channels={"top_up_received": ["sms"]})
        await rig.publish(SOURCES["top_up_received"][0])
        [sms] = await rig.received("tencent")
        assert sms["phone"] == TENANT_PHONE
        assert sms["template"] == "1000001"
        assert sms["params"] == ["A1", "50.00"]
        assert rig.fake.refused == []
        [sent] = await rig.settled(1)
        assert sent["provider_answer"].startswith(f"tencent: SerialNo={sms['serial']}")
