"""Passwords, bearer tokens and who may see what."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user name, a role and, for tenants, their accounts."""

    username: str
    role: Role
    account_ids: frozenset[str] = frozenset()

    @property
    def is_staff(self) -> bool:
        """Whether the caller is an operator or an admin."""
        return self.role in ("admin", "operator")

    def may_see_account(self, account_id: str | None) -> bool:
        """Staff see every account; a tenant its own (and nothing unbound: ``None``)."""
        return self.is_staff or account_id in self.account_ids


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


@dataclass
class LoginThrottle:
    """Refuse logins for a user name after too many failures in a window."""

    max_failures: int = 10
    window_seconds: float = 300.0
    _failures: dict[str, list[float]] = field(default_factory=dict)

    def blocked(self, username: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        recent = [t for t in self._failures.get(username, []) if now - t < self.window_seconds]
        self._failures[username] = recent
        return len(recent) >= self.max_failures

    def failed(self, username: str, now: float | None = None) -> None:
        self._failures.setdefault(username, []).append(time.monotonic() if now is None else now)

    def succeeded(self, username: str) -> None:
        self._failures.pop(username, None)
