"""SHA256 with RSA, PKCS#1 v1.5, base64: the one signature both providers use."""

from __future__ import annotations

import base64
import binascii

from Crypto.Hash import SHA256
from Crypto.PublicKey.RSA import RsaKey
from Crypto.Signature import pkcs1_15


def sign_sha256_rsa(key: RsaKey, message: bytes) -> str:
    """Return the base64 SHA256-with-RSA signature of ``message`` under a private key."""
    return base64.b64encode(pkcs1_15.new(key).sign(SHA256.new(message))).decode("ascii")


def verify_sha256_rsa(key: RsaKey, message: bytes, signature: str) -> bool:
    """Whether ``signature`` (base64) is the key holder's signature of ``message``."""
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return False
    try:
        pkcs1_15.new(key).verify(SHA256.new(message), raw)
    except (ValueError, TypeError):
        return False
    return True
