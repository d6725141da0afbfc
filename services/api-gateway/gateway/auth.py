"""Passwords (argon2id, hashed off the event loop) and bearer tokens (signed JWTs)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import anyio
import jwt
from anyio import CapacityLimiter
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from prepaid_common.contracts.api.gateway import ROLES, Role

_hasher = PasswordHasher()  # argon2id, memory-hard

# argon2 takes tens of milliseconds and 64 MiB each: a few at a time, in threads, so the
# event loop keeps answering and a burst of logins cannot exhaust the memory.
_HASHING = CapacityLimiter(2)


def hash_password(password: str) -> str:
    """Hash a password with argon2id."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Return whether the password matches the stored hash."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def hash_password_off_loop(password: str) -> str:
    """Hash a password in a worker thread."""
    return await anyio.to_thread.run_sync(hash_password, password, limiter=_HASHING)


async def verify_password_off_loop(password_hash: str | None, password: str) -> bool:
    """Check a password in a worker thread; with no hash (no such user) check a dummy one,
    so an unknown user takes as long to refuse as a known one."""
    checked = password_hash if password_hash is not None else _dummy_hash()
    matches = await anyio.to_thread.run_sync(verify_password, checked, password, limiter=_HASHING)
    return matches and password_hash is not None


@functools.cache
def _dummy_hash() -> str:
    return _hasher.hash("no user has this password: it only takes the time a real one takes")


@dataclass(frozen=True)
class TokenClaims:
    """Who a valid token names, and the user's token version when it was signed."""

    username: str
    role: Role
    version: int


def issue_token(*, username: str, role: Role, secret: str, ttl: timedelta, version: int = 0) -> str:
    """Sign a short-lived bearer token (``ver``: revoked when the user's version moves on)."""
    now = datetime.now(UTC)
    return jwt.encode(
        {"sub": username, "role": role, "ver": version, "iat": now, "exp": now + ttl},
        secret,
        algorithm="HS256",
    )


def read_token(token: str, *, secret: str) -> TokenClaims | None:
    """Return the claims of a valid token, or None."""
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], options={"require": ["exp"]})
    except jwt.PyJWTError:
        return None
    role = claims.get("role")
    username = claims.get("sub")
    version = claims.get("ver", 0)
    if role not in ROLES or not isinstance(username, str) or not isinstance(version, int):
        return None
    return TokenClaims(username=username, role=role, version=version)
