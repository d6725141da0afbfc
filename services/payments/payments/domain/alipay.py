"""Alipay open platform: RSA2 over sorted parameters, and its signed answers."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from Crypto.PublicKey.RSA import RsaKey

from payments.domain.signatures import sign_sha256_rsa, verify_sha256_rsa

PAID_STATES = frozenset({"TRADE_SUCCESS", "TRADE_FINISHED"})
SUCCESS_CODE = "10000"
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"


class AlipayRefused(Exception):
    """A message that does not prove it comes from Alipay; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def signing_content(params: Mapping[str, str], *, drop: frozenset[str]) -> str:
    """Return ``k=v&...`` over the non-empty parameters not in ``drop``, keys in ASCII order."""
    return "&".join(
        f"{key}={params[key]}" for key in sorted(params) if key not in drop and params[key] != ""
    )


def sign_request(params: Mapping[str, str], key: RsaKey) -> str:
    """Return the ``sign`` of a request: every parameter but ``sign``, under the app key."""
    return sign_sha256_rsa(key, signing_content(params, drop=frozenset({"sign"})).encode())


def verify_notification(params: Mapping[str, str], alipay_public_key: RsaKey) -> None:
    """Refuse an asynchronous notification not signed with Alipay's key (URL-decoded values)."""
    if params.get("sign_type", "RSA2") != "RSA2":
        raise AlipayRefused(f"sign_type {params.get('sign_type')!r} is not RSA2")
    signature = params.get("sign", "")
    if not signature:
        raise AlipayRefused("no sign")
    content = signing_content(params, drop=frozenset({"sign", "sign_type"}))
    if not verify_sha256_rsa(alipay_public_key, content.encode(), signature):
        raise AlipayRefused("signature does not verify")


def response_member(raw: str, method: str) -> tuple[str, str]:
    """Return the raw JSON text of ``<method>_response`` and the answer's ``sign``."""
    name = method.replace(".", "_") + "_response"
    try:
        answer = json.loads(raw)
        signature = answer.get("sign", "")
        # The signature covers the member's text exactly as sent: cut it out, do not re-dump.
        start = raw.index(f'"{name}"') + len(name) + 2
        start = raw.index(":", start - 1) + 1
        while raw[start] in " \t\r\n":
            start += 1
        _, length = json.JSONDecoder().raw_decode(raw[start:])
    except (ValueError, AttributeError, IndexError):
        raise AlipayRefused(f"answer has no {name}") from None
    return raw[start : start + length], str(signature)


def verify_response(raw: str, method: str, alipay_public_key: RsaKey) -> dict[str, Any]:
    """Return the ``<method>_response`` object of a gateway answer whose signature verifies."""
    member, signature = response_member(raw, method)
    if not signature:
        raise AlipayRefused("answer carries no sign")
    if not verify_sha256_rsa(alipay_public_key, member.encode(), signature):
        raise AlipayRefused("answer signature does not verify")
    parsed = json.loads(member)
    if not isinstance(parsed, dict):
        raise AlipayRefused("answer member is not an object")
    return parsed
