"""The providers' signatures exactly as payments.md says: WeChat Pay v3 and Alipay RSA2."""

from __future__ import annotations

import base64
import json

import pytest
from Crypto.Cipher import AES
from Crypto.Hash import SHA256
from Crypto.PublicKey import RSA
from Crypto.Signature import pkcs1_15
from payments.domain import alipay, wechatpay
from payments.domain.wechatpay import WechatKeys, WechatRefused

PLATFORM = RSA.generate(2048)
MERCHANT = RSA.generate(2048)
OTHER = RSA.generate(2048)
API_V3_KEY = b"0123456789abcdef0123456789abcdef"
NOW = 1_765_000_000
SERIAL = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
PUB_ID = "PUB_KEY_ID_0114232134912410000000000000"


def _sign(key: RSA.RsaKey, message: bytes) -> str:
    return base64.b64encode(pkcs1_15.new(key).sign(SHA256.new(message))).decode()


def _headers(body: bytes, *, key: RSA.RsaKey = PLATFORM, at: int = NOW, serial: str = SERIAL):
    nonce = "fdasflkja484w"
    message = f"{at}\n{nonce}\n".encode() + body + b"\n"
    return {
        "wechatpay-timestamp": str(at),
        "wechatpay-nonce": nonce,
        "wechatpay-signature": _sign(key, message),
        "wechatpay-serial": serial,
    }


KEYS = WechatKeys(
    public_key_id=PUB_ID,
    public_key=OTHER.public_key(),
    certificates={SERIAL: PLATFORM.public_key()},
)


def test_the_authorization_header_signs_the_documented_string() -> None:
    body = b'{"appid":"wxd678efh567hg6787","mchid":"1230000109"}'
    header = wechatpay.authorization(
        mchid="1230000109",
        serial_no="1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C",
        key=MERCHANT,
        method="POST",
        path_with_query="/v3/pay/transactions/native",
        body=body,
        timestamp=1554208460,
        nonce="593BEC0C930BF1AFEB40B4A08C8FB242",
    )
    assert header.startswith('WECHATPAY2-SHA256-RSA2048 mchid="1230000109",')
    assert 'nonce_str="593BEC0C930BF1AFEB40B4A08C8FB242"' in header
    assert 'timestamp="1554208460"' in header
    assert 'serial_no="1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C"' in header
    signature = header.split('signature="')[1].rstrip('"')
    documented = (
        b"POST\n/v3/pay/transactions/native\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n"
        + body
        + b"\n"
    )
    pkcs1_15.new(MERCHANT.public_key()).verify(SHA256.new(documented), base64.b64decode(signature))


def test_a_get_signs_an_empty_body() -> None:
    header = wechatpay.authorization(
        mchid="1",
        serial_no="S",
        key=MERCHANT,
        method="get",
        path_with_query="/v3/pay/transactions/out-trade-no/X1?mchid=1",
        body=b"",
        timestamp=1,
        nonce="N",
    )
    signature = header.split('signature="')[1].rstrip('"')
    message = b"GET\n/v3/pay/transactions/out-trade-no/X1?mchid=1\n1\nN\n\n"
    pkcs1_15.new(MERCHANT.public_key()).verify(SHA256.new(message), base64.b64decode(signature))


def test_a_notification_signed_by_a_known_certificate_verifies() -> None:
    body = b'{"id": "EV-1",  "resource": {}}'  # odd spacing: the raw bytes are what counts
    wechatpay.verify_signed(headers=_headers(body), body=body, keys=KEYS, now=NOW + 299)


def test_the_public_key_id_chooses_the_public_key() -> None:
    body = b"{}"
    headers = _headers(body, key=OTHER, serial=PUB_ID)
    wechatpay.verify_signed(headers=headers, body=body, keys=KEYS, now=NOW)


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("reserialised", "does not verify"),
        ("stale", "window"),
        ("future", "window"),
        ("signtest", "SIGNTEST"),
        ("unknown serial", "unknown"),
        ("wrong key", "does not verify"),
        ("missing", "missing"),
    ],
)
def test_a_forged_or_stale_notification_is_refused(case: str, reason: str) -> None:
    body = b'{"id": "EV-1"}'
    headers = _headers(body)
    now = NOW
    if case == "reserialised":
        body = json.dumps(json.loads(body), separators=(",", ":")).encode()
    elif case == "stale":
        now = NOW + 300
    elif case == "future":
        now = NOW - 300
    elif case == "signtest":
        headers["wechatpay-signature"] = "WECHATPAY/SIGNTEST/" + headers["wechatpay-signature"]
    elif case == "unknown serial":
        headers["wechatpay-serial"] = "ABCDEF"
    elif case == "wrong key":
        headers = _headers(body, key=MERCHANT)
    elif case == "missing":
        del headers["wechatpay-nonce"]
    with pytest.raises(WechatRefused, match=reason):
        wechatpay.verify_signed(headers=headers, body=body, keys=KEYS, now=now)


def _seal(plain: bytes, *, nonce: str = "fdasflkja484", aad: str = "transaction") -> dict:
    cipher = AES.new(API_V3_KEY, AES.MODE_GCM, nonce=nonce.encode())
    cipher.update(aad.encode())
    sealed, tag = cipher.encrypt_and_digest(plain)
    return {
        "original_type": "transaction",
        "algorithm": "AEAD_AES_256_GCM",
        "ciphertext": base64.b64encode(sealed + tag).decode(),
        "associated_data": aad,
        "nonce": nonce,
    }


def test_the_resource_decrypts_with_the_api_v3_key() -> None:
    plain = json.dumps({"out_trade_no": "PP1", "amount": {"total": 5000}}).encode()
    assert wechatpay.decrypt_resource(_seal(plain), API_V3_KEY) == plain
    assert wechatpay.decrypt_resource(_seal(plain, aad=""), API_V3_KEY) == plain
    body = json.dumps({"event_type": "TRANSACTION.SUCCESS", "resource": _seal(plain)}).encode()
    transaction = wechatpay.notification_transaction(body, API_V3_KEY)
    assert transaction["amount"] == {"total": 5000}
    assert transaction["event_type"] == "TRANSACTION.SUCCESS"


def test_a_tampered_resource_is_refused() -> None:
    resource = _seal(b'{"amount": {"total": 1}}')
    sealed = bytearray(base64.b64decode(resource["ciphertext"]))
    sealed[3] ^= 1
    with pytest.raises(WechatRefused):
        wechatpay.decrypt_resource(
            {**resource, "ciphertext": base64.b64encode(bytes(sealed)).decode()}, API_V3_KEY
        )
    with pytest.raises(WechatRefused):
        wechatpay.decrypt_resource({**_seal(b"{}"), "associated_data": "other"}, API_V3_KEY)
    with pytest.raises(WechatRefused):
        wechatpay.decrypt_resource(_seal(b"{}"), b"f" * 32)


def test_the_jsapi_page_parameters_are_signed() -> None:
    params = wechatpay.jsapi_pay_parameters(
        appid="wx1",
        prepay_id="wx201410272009395522657a690389285100",
        key=MERCHANT,
        timestamp=1414561699,
        nonce="5K8264ILTKCH16CQ2502SI8ZNMTM67VS",
    )
    message = (
        b"wx1\n1414561699\n5K8264ILTKCH16CQ2502SI8ZNMTM67VS\n"
        b"prepay_id=wx201410272009395522657a690389285100\n"
    )
    pkcs1_15.new(MERCHANT.public_key()).verify(
        SHA256.new(message), base64.b64decode(params["paySign"])
    )
    assert params["package"] == "prepay_id=wx201410272009395522657a690389285100"


NOTIFY = {
    "notify_time": "2026-12-07 12:00:00",
    "notify_type": "trade_status_sync",
    "notify_id": "ac05099524730693a8b330c5ecf72da9786",
    "app_id": "2021000000000000",
    "charset": "utf-8",
    "version": "1.0",
    "trade_no": "2026120722001",
    "out_trade_no": "PP1",
    "seller_id": "2088000000000000",
    "trade_status": "TRADE_SUCCESS",
    "total_amount": "50.00",
    "passback_params": "a b&c=d",
    "buyer_id": "",
}


def test_alipay_signing_content_is_sorted_without_sign_or_empty_values() -> None:
    content = alipay.signing_content(
        {**NOTIFY, "sign": "x", "sign_type": "RSA2"}, drop=frozenset({"sign", "sign_type"})
    )
    assert content.startswith("app_id=2021000000000000&charset=utf-8&notify_id=")
    assert "buyer_id" not in content
    assert "sign" not in content.replace("sign_type", "")
    assert "passback_params=a b&c=d" in content  # decoded values, not re-encoded


def test_alipay_notification_signed_by_alipay_verifies() -> None:
    content = alipay.signing_content(NOTIFY, drop=frozenset())
    signed = {**NOTIFY, "sign_type": "RSA2", "sign": _sign(PLATFORM, content.encode())}
    alipay.verify_notification(signed, PLATFORM.public_key())


@pytest.mark.parametrize("case", ["app key", "changed amount", "no sign", "RSA"])
def test_alipay_forgeries_are_refused(case: str) -> None:
    content = alipay.signing_content(NOTIFY, drop=frozenset())
    signed = {**NOTIFY, "sign_type": "RSA2", "sign": _sign(PLATFORM, content.encode())}
    key = PLATFORM.public_key()
    if case == "app key":
        key = MERCHANT.public_key()  # the most common mistake: our own key, not Alipay's
    elif case == "changed amount":
        signed["total_amount"] = "5000.00"
    elif case == "no sign":
        del signed["sign"]
    elif case == "RSA":
        signed["sign_type"] = "RSA"
    with pytest.raises(alipay.AlipayRefused):
        alipay.verify_notification(signed, key)


def test_alipay_request_signature_covers_sign_type() -> None:
    params = {
        "app_id": "1",
        "method": "alipay.trade.query",
        "sign_type": "RSA2",
        "biz_content": "{}",
    }
    signature = alipay.sign_request(params, MERCHANT)
    message = b"app_id=1&biz_content={}&method=alipay.trade.query&sign_type=RSA2"
    pkcs1_15.new(MERCHANT.public_key()).verify(SHA256.new(message), base64.b64decode(signature))


def test_alipay_answer_signature_covers_the_raw_member() -> None:
    member = '{"code":"10000","msg":"Success", "qr_code":"https://qr.alipay.com/x"}'
    raw = (
        '{"alipay_trade_precreate_response": '
        + member
        + ',"sign":"'
        + _sign(PLATFORM, member.encode())
        + '"}'
    )
    answer = alipay.verify_response(raw, "alipay.trade.precreate", PLATFORM.public_key())
    assert answer["qr_code"] == "https://qr.alipay.com/x"
    with pytest.raises(alipay.AlipayRefused):
        alipay.verify_response(
            raw.replace("/x", "/y"), "alipay.trade.precreate", PLATFORM.public_key()
        )
    with pytest.raises(alipay.AlipayRefused):
        alipay.verify_response(raw, "alipay.trade.query", PLATFORM.public_key())
