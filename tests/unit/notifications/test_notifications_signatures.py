"""The request signatures against the providers' own documented examples, and the fakes'
independent checks against ours (a mistake in one is caught by the other)."""

from __future__ import annotations

import time

from notifications.domain.signing import (
    aliyun_signature,
    aliyun_string_to_sign,
    tencent_authorization,
    webhook_signature,
    webhook_signature_valid,
)
from simulator.notifyproviders.app import (
    aliyun_expected_signature,
    tencent_expected_authorization,
)

# Aliyun's SendSms signature example (its documentation's "testId" / "testSecret").
ALIYUN_EXAMPLE = {
    "AccessKeyId": "testId",
    "Action": "SendSms",
    "Format": "XML",
    "OutId": "123",
    "PhoneNumbers": "15300000001",
    "RegionId": "cn-hangzhou",
    "SignName": "阿里云短信测试专用",
    "SignatureMethod": "HMAC-SHA1",
    "SignatureNonce": "45e25e9b-0a6f-4070-8c85-2956eda1b466",
    "SignatureVersion": "1.0",
    "TemplateCode": "SMS_71390007",
    "TemplateParam": '{"customer":"test"}',
    "Timestamp": "2017-07-12T02:42:19Z",
    "Version": "2017-05-25",
}

# Tencent Cloud's TC3-HMAC-SHA256 example (CVM DescribeInstances, its masked keys).
TENCENT_PAYLOAD = (
    b'{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}'
)
TENCENT_ID = "AKIDz8krbsJ5yKBZQpn74WFkmLPx3*******"
TENCENT_KEY = "Gu5t9xGARNpq86cd98joQYCN3*******"


def test_aliyun_signature_matches_the_documented_example() -> None:
    assert aliyun_string_to_sign("GET", ALIYUN_EXAMPLE).startswith(
        "GET&%2F&AccessKeyId%3DtestId%26Action%3DSendSms%26Format%3DXML"
    )
    assert "SignName%3D%25E9%2598%25BF" in aliyun_string_to_sign("GET", ALIYUN_EXAMPLE)
    assert aliyun_signature("testSecret", "GET", ALIYUN_EXAMPLE) == "zJDF+Lrzhj/ThnlvIToysFRq6t4="
    assert aliyun_expected_signature("testSecret", ALIYUN_EXAMPLE) == "zJDF+Lrzhj/ThnlvIToysFRq6t4="


def test_aliyun_signature_ignores_the_signature_parameter_and_depends_on_every_other() -> None:
    signed = aliyun_signature("testSecret", "GET", ALIYUN_EXAMPLE)
    assert aliyun_signature("testSecret", "GET", {**ALIYUN_EXAMPLE, "Signature": "x"}) == signed
    changed = {**ALIYUN_EXAMPLE, "PhoneNumbers": "15300000002"}
    assert aliyun_signature("testSecret", "GET", changed) != signed
    assert aliyun_signature("otherSecret", "GET", ALIYUN_EXAMPLE) != signed


def test_tencent_tc3_matches_the_documented_example() -> None:
    authorization = tencent_authorization(
        secret_id=TENCENT_ID,
        secret_key=TENCENT_KEY,
        service="cvm",
        host="cvm.tencentcloudapi.com",
        payload=TENCENT_PAYLOAD,
        timestamp=1551113065,
    )
    assert authorization == (
        f"TC3-HMAC-SHA256 Credential={TENCENT_ID}/2019-02-25/cvm/tc3_request, "
        "SignedHeaders=content-type;host, "
        "Signature=2230eefd229f582d8b1b891af7107b91597240707d778ab3738f756258d7652c"
    )


def test_the_fake_tencent_accepts_what_the_client_signs_and_nothing_else() -> None:
    parts = {"host": "127.0.0.1:9", "body": b'{"a":1}', "timestamp": 1700000000}
    ours = tencent_authorization(
        secret_id="id",
        secret_key="key",
        service="sms",
        host=str(parts["host"]),
        payload=b'{"a":1}',
        timestamp=1700000000,
    )
    content_type = "application/json; charset=utf-8"
    assert ours == tencent_expected_authorization(
        "id",
        "key",
        host="127.0.0.1:9",
        content_type=content_type,
        body=b'{"a":1}',
        timestamp=1700000000,
    )
    assert ours != tencent_expected_authorization(
        "id",
        "key",
        host="127.0.0.1:9",
        content_type=content_type,
        body=b'{"a":2}',
        timestamp=1700000000,
    )


def test_webhook_signature_covers_timestamp_and_body() -> None:
    now = int(time.time())
    signature = webhook_signature("whsec_k", now, b'{"id":"e1"}')
    assert signature.startswith("v1=")
    assert len(signature) == 3 + 64
    assert webhook_signature_valid("whsec_k", now, b'{"id":"e1"}', signature, now=now)
    assert not webhook_signature_valid("whsec_k", now, b'{"id":"e2"}', signature, now=now)
    assert not webhook_signature_valid("whsec_k", now + 1, b'{"id":"e1"}', signature, now=now)
    assert not webhook_signature_valid("other", now, b'{"id":"e1"}', signature, now=now)
    # A replay long after: refused by the receiver's tolerance.
    assert not webhook_signature_valid("whsec_k", now, b'{"id":"e1"}', signature, now=now + 301)
