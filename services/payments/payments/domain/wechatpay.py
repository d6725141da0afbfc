"""WeChat Pay API v3: request signatures, verifying what it sends, decrypting its resources."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from Crypto.Cipher import AES
from Crypto.PublicKey.RSA import RsaKey

from payments.domain.signatures import sign_sha256_rsa, verify_sha256_rsa

SCHEMA = "WECHATPAY2-SHA256-RSA2048"
SIGNATURE_TYPE = "WECHATPAY2-SHA256-RSA2048"
REPLAY_WINDOW_SECONDS = 300
SIGNTEST_PREFIX = "WECHATPAY/SIGNTEST/"
PUBLIC_KEY_ID_PREFIX = "PUB_KEY_ID_"
GCM_TAG_BYTES = 16
API_V3_KEY_BYTES = 32
# Header names as they arrive, lower-cased (HTTP header names are case-insensitive).
TIMESTAMP = "wechatpay-timestamp"
NONCE = "wechatpay-nonce"
SIGNATURE = "wechatpay-signature"
SERIAL = "wechatpay-serial"


class WechatRefused(Exception):
    """A message that does not prove it comes from WeChat Pay; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def signed_message(*lines: str | bytes) -> bytes:
    """Join the lines WeChat signs: each one followed by a newline."""
    return b"".join((line.encode() if isinstance(line, str) else line) + b"\n" for line in lines)


def authorization(
    *,
    mchid: str,
    serial_no: str,
    key: RsaKey,
    method: str,
    path_with_query: str,
    body: bytes,
    timestamp: int,
    nonce: str,
) -> str:
    """Return the ``Authorization`` header of a request to WeChat Pay (body: the bytes sent)."""
    message = signed_message(method.upper(), path_with_query, str(timestamp), nonce, body)
    signature = sign_sha256_rsa(key, message)
    return (
        f'{SCHEMA} mchid="{mchid}",nonce_str="{nonce}",timestamp="{timestamp}",'
        f'serial_no="{serial_no}",signature="{signature}"'
    )


@dataclass(frozen=True)
class WechatKeys:
    """The keys WeChat Pay signs with: its public key (by id) and platform certificates.

    Both may be configured at once: during a migration messages come signed by either.
    """

    public_key_id: str | None = None
    public_key: RsaKey | None = None
    # Certificate serial (upper-case hex) -> its public key; rotation overlaps, keep them all.
    certificates: Mapping[str, RsaKey] = field(default_factory=dict)

    def key_for(self, serial: str) -> RsaKey | None:
        """Return the key a ``Wechatpay-Serial`` names, or None if we do not know it."""
        if self.public_key_id is not None and serial == self.public_key_id:
            return self.public_key
        return self.certificates.get(serial.upper())


def verify_signed(*, headers: Mapping[str, str], body: bytes, keys: WechatKeys, now: float) -> None:
    """Refuse a notification or answer not signed by WeChat Pay within the replay window.

    ``headers`` are lower-cased; ``body`` the raw bytes received, never re-serialised.
    """
    timestamp, nonce = headers.get(TIMESTAMP, ""), headers.get(NONCE, "")
    signature, serial = headers.get(SIGNATURE, ""), headers.get(SERIAL, "")
    if not (timestamp and nonce and signature and serial):
        raise WechatRefused("missing Wechatpay-* signature headers")
    if signature.startswith(SIGNTEST_PREFIX):
        # WeChat's deliberate probe: a merchant that accepts it does not verify.
        raise WechatRefused("signature probe (WECHATPAY/SIGNTEST/)")
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise WechatRefused("Wechatpay-Timestamp is not a number") from None
    if abs(now - sent_at) >= REPLAY_WINDOW_SECONDS:
        raise WechatRefused(f"timestamp {sent_at} outside the 300 s window")
    key = keys.key_for(serial)
    if key is None:
        raise WechatRefused(f"unknown Wechatpay-Serial {serial}")
    if not verify_sha256_rsa(key, signed_message(timestamp, nonce, body), signature):
        raise WechatRefused("signature does not verify")


def decrypt_resource(resource: Mapping[str, Any], api_v3_key: bytes) -> bytes:
    """Decrypt an AEAD_AES_256_GCM ``resource`` with the API v3 key; refuse a forged one."""
    if resource.get("algorithm") != "AEAD_AES_256_GCM":
        raise WechatRefused(f"unknown resource algorithm {resource.get('algorithm')!r}")
    if len(api_v3_key) != API_V3_KEY_BYTES:
        raise ValueError("the API v3 key must be 32 bytes")
    try:
        # The nonce is the 12 characters themselves, not base64; the tag ends the ciphertext.
        nonce = str(resource["nonce"]).encode()
        associated = str(resource.get("associated_data") or "").encode()
        sealed = base64.b64decode(str(resource["ciphertext"]), validate=True)
    except (KeyError, binascii.Error, ValueError):
        raise WechatRefused("resource is not a sealed AEAD_AES_256_GCM message") from None
    if len(sealed) <= GCM_TAG_BYTES:
        raise WechatRefused("resource ciphertext too short")
    cipher = AES.new(api_v3_key, AES.MODE_GCM, nonce=nonce)
    cipher.update(associated)
    try:
        return cipher.decrypt_and_verify(sealed[:-GCM_TAG_BYTES], sealed[-GCM_TAG_BYTES:])
    except ValueError:
        raise WechatRefused("resource does not decrypt with the API v3 key") from None


def notification_transaction(body: bytes, api_v3_key: bytes) -> dict[str, Any]:
    """Return the decrypted transaction (or refund) a verified notification carries."""
    try:
        envelope = json.loads(body)
        resource = envelope["resource"]
        if not isinstance(resource, dict):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise WechatRefused("notification body is not WeChat Pay's JSON") from None
    plain = decrypt_resource(resource, api_v3_key)
    try:
        transaction = json.loads(plain)
    except ValueError:
        raise WechatRefused("decrypted resource is not JSON") from None
    if not isinstance(transaction, dict):
        raise WechatRefused("decrypted resource is not an object")
    transaction["event_type"] = envelope.get("event_type")
    return transaction


def jsapi_pay_parameters(
    *, appid: str, prepay_id: str, key: RsaKey, timestamp: int, nonce: str
) -> dict[str, str]:
    """Return what the WeChat page's ``requestPayment`` needs, signed with the merchant key."""
    package = f"prepay_id={prepay_id}"
    signature = sign_sha256_rsa(key, signed_message(appid, str(timestamp), nonce, package))
    return {
        "appId": appid,
        "timeStamp": str(timestamp),
        "nonceStr": nonce,
        "package": package,
        "signType": "RSA",
        "paySign": signature,
    }
