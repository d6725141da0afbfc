"""Request signatures: Aliyun's RPC signature, Tencent Cloud's TC3-HMAC-SHA256, and ours on
outbound webhooks. Pure functions of their inputs, so tests hold them to known vectors."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import quote


# --- Aliyun RPC (dysmsapi) ---------------------------------------------------------------
def aliyun_percent_encode(value: str) -> str:
    """RFC 3986 percent-encoding of UTF-8, as Aliyun's RPC signature wants it."""
    return quote(value, safe="-_.~")


def aliyun_string_to_sign(method: str, params: Mapping[str, str]) -> str:
    """``METHOD&%2F&<encoded canonical query>``: every parameter but Signature, sorted."""
    canonical = "&".join(
        f"{aliyun_percent_encode(k)}={aliyun_percent_encode(v)}"
        for k, v in sorted(params.items())
        if k != "Signature"
    )
    return f"{method}&{aliyun_percent_encode('/')}&{aliyun_percent_encode(canonical)}"


def aliyun_signature(secret: str, method: str, params: Mapping[str, str]) -> str:
    """Base64 of HMAC-SHA1 keyed with ``AccessKeySecret + '&'``."""
    digest = hmac.new(
        (secret + "&").encode(), aliyun_string_to_sign(method, params).encode(), hashlib.sha1
    ).digest()
    return base64.b64encode(digest).decode()


# --- Tencent Cloud TC3-HMAC-SHA256 -------------------------------------------------------
TC3 = "TC3-HMAC-SHA256"


def _hmac256(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def tencent_authorization(
    *,
    secret_id: str,
    secret_key: str,
    service: str,
    host: str,
    payload: bytes,
    timestamp: int,
    content_type: str = "application/json; charset=utf-8",
) -> str:
    """The Authorization header of a POST with a JSON body (signed headers content-type
    and host)."""
    day = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
    canonical_request = "\n".join(
        [
            "POST",
            "/",
            "",
            f"content-type:{content_type}\nhost:{host}\n",
            "content-type;host",
            hashlib.sha256(payload).hexdigest(),
        ]
    )
    scope = f"{day}/{service}/tc3_request"
    string_to_sign = "\n".join(
        [TC3, str(timestamp), scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    signing = _hmac256(_hmac256(_hmac256(f"TC3{secret_key}".encode(), day), service), "tc3_request")
    signature = hmac.new(signing, string_to_sign.encode(), hashlib.sha256).hexdigest()
    return (
        f"{TC3} Credential={secret_id}/{scope}, SignedHeaders=content-type;host, "
        f"Signature={signature}"
    )


# --- our outbound webhooks ---------------------------------------------------------------
WEBHOOK_SIGNATURE_HEADER = "X-Prepaid-Signature"
WEBHOOK_TIMESTAMP_HEADER = "X-Prepaid-Timestamp"
WEBHOOK_EVENT_HEADER = "X-Prepaid-Event"
WEBHOOK_DELIVERY_HEADER = "X-Prepaid-Delivery"


def webhook_signature(secret: str, timestamp: int, body: bytes) -> str:
    """``v1=`` and the hex HMAC-SHA256 of ``<timestamp>.<body>`` keyed with the secret."""
    signed = str(timestamp).encode() + b"." + body
    return "v1=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def webhook_signature_valid(
    secret: str, timestamp: int, body: bytes, signature: str, *, now: int, tolerance: int = 300
) -> bool:
    """What a receiver checks: the signature, and a timestamp within ``tolerance`` s."""
    if abs(now - timestamp) > tolerance:
        return False
    return hmac.compare_digest(webhook_signature(secret, timestamp, body), signature)
