"""The gateway's rules: who may see what, who may be created, when logins are refused."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from prepaid_common.contracts.api.gateway import ROLES, Role
from prepaid_common.errors import Invalid

MIN_PASSWORD_LENGTH = 8


def check_new_user(*, role: str, password: str) -> None:
    """Refuse a user with an unknown role or too short a password."""
    if role not in ROLES:
        raise Invalid(f"role must be one of {', '.join(ROLES)}")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise Invalid(f"password must be at least {MIN_PASSWORD_LENGTH} characters")


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


@dataclass
class LoginThrottle:
    """Refuse logins for a user name after too many failures in a window."""

    max_failures: int = 10
    window_seconds: float = 300.0
    _failures: dict[str, list[float]] = field(default_factory=dict)

    def blocked(self, username: str, now: float | None = None) -> bool:
        """Return whether the user name is locked now (forgetting failures out of window)."""
        now = time.monotonic() if now is None else now
        recent = [t for t in self._failures.get(username, []) if now - t < self.window_seconds]
        self._failures[username] = recent
        return len(recent) >= self.max_failures

    def failed(self, username: str, now: float | None = None) -> None:
        """Count a failed login for the user name."""
        self._failures.setdefault(username, []).append(time.monotonic() if now is None else now)

    def succeeded(self, username: str) -> None:
        """Forget the user name's failures after a good login."""
        self._failures.pop(username, None)
