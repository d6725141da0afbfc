"""Passwords (argon2id) and bearer tokens (signed JWTs)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from prepaid_common.contracts.api.gateway import ROLES, Role

_hasher = PasswordHasher()  # argon2id, memory-hard


def hash_password(password: str) -> str:
    """Hash a password with argon2id."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Return whether the password matches the stored hash."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def issue_token(*, username: str, role: Role, secret: str, ttl: timedelta) -> str:
    """Sign a short-lived bearer token."""
    now = datetime.now(UTC)
    return jwt.encode(
        {"sub": username, "role": role, "iat": now, "exp": now + ttl}, secret, algorithm="HS256"
    )


def read_token(token: str, *, secret: str) -> tuple[str, Role] | None:
    """Return (username, role) of a valid token, or None."""
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], options={"require": ["exp"]})
    except jwt.PyJWTError:
        return None
    role = claims.get("role")
    username = claims.get("sub")
    if role not in ROLES or not isinstance(username, str):
        return None
    return username, role
