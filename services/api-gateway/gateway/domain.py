"""The gateway's rules: who may see what, who may be created, when logins are refused."""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, TypeVar

from prepaid_common.contracts.api.gateway import ROLES, Role, Scope
from prepaid_common.errors import Invalid

MIN_PASSWORD_LENGTH = 8


def check_new_user(
    *, username: str, role: str, password: str, common: Collection[str] = ()
) -> None:
    """Refuse a user with an unknown role or a password the policy refuses."""
    if role not in ROLES:
        raise Invalid(f"role must be one of {', '.join(ROLES)}")
    check_password(username=username, password=password, common=common)


def check_password(*, username: str, password: str, common: Collection[str]) -> None:
    """Refuse a short password, a commonly used one, or one that is the user name."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise Invalid(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    lowered = password.lower()
    if lowered in common or lowered == username.lower():
        raise Invalid("this password is too common (or the user name): choose another")


SCOPES: tuple[Scope, ...] = ("read", "operate", "money")

# Writes that move money need the "money" scope; every other write "operate", a read "read".
MONEY_ROUTES = frozenset(
    {
        "/accounts/{account_id}/top-ups",
        "/accounts/{account_id}/arrears",
        "/accounts/{account_id}/refunds",
        "/accounts/{account_id}/orders",
        "/transactions/{transaction_id}/reversal",
        "/orders/{out_trade_no}/refunds",
    }
)


def scope_needed(method: str, route: str) -> Scope:
    """Return the API-key scope a call needs: reads, money writes, other writes."""
    if method in ("GET", "HEAD", "OPTIONS"):
        return "read"
    # A route's template, with or without the API's prefix.
    return "money" if route.removeprefix("/api/v1") in MONEY_ROUTES else "operate"


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user name, a role and, for tenants, their accounts."""

    username: str
    role: Role
    account_ids: frozenset[str] = frozenset()
    # An API key's scopes; None for a person, whose role says everything.
    scopes: frozenset[Scope] | None = None

    @property
    def is_staff(self) -> bool:
        """Whether the caller is an operator or an admin."""
        return self.role in ("admin", "operator")

    def may_see_account(self, account_id: str | None) -> bool:
        """Staff see every account; a tenant its own (and nothing unbound: ``None``)."""
        return self.is_staff or account_id in self.account_ids


_Key = TypeVar("_Key")


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0


@dataclass
class LoginThrottle:
    """When to refuse a login before looking at its password.

    Failures are counted per (user, address) and per address, each with exponential back-off
    once over its allowance, so a guesser slows only itself. Failures for a user from every
    address also count, but hold back only addresses that never signed in as that user: an
    attacker who does not know the password cannot keep the real user out of a known place.
    """

    per_pair: int = 5
    per_address: int = 30
    per_user: int = 50
    # Back-off doubles from one second per failure over the allowance, up to this.
    max_delay_seconds: float = 900.0
    # Failures for a user from everywhere hold back a new place for at most this long.
    max_user_delay: float = 30.0
    # Failures older than this are forgotten.
    window_seconds: float = 3600.0
    # The most keys kept per table; the oldest are forgotten first (memory stays bounded).
    max_keys: int = 100_000
    _pairs: dict[tuple[str, str], _Failures] = field(default_factory=dict)
    _addresses: dict[str, _Failures] = field(default_factory=dict)
    _users: dict[str, _Failures] = field(default_factory=dict)
    _trusted: dict[tuple[str, str], float] = field(default_factory=dict)

    def retry_after(self, username: str, address: str, now: float | None = None) -> float:
        """Return the seconds to wait before this user may try from this address (0: now)."""
        now = time.monotonic() if now is None else now
        waits = [
            self._wait(self._pairs.get((username, address)), self.per_pair, now),
            self._wait(self._addresses.get(address), self.per_address, now),
        ]
        if (username, address) not in self._trusted:
            waits.append(
                min(self._wait(self._users.get(username), self.per_user, now), self.max_user_delay)
            )
        return max(waits)

    def failed(self, username: str, address: str, now: float | None = None) -> None:
        """Count a failed login."""
        now = time.monotonic() if now is None else now
        self._count(self._pairs, (username, address), now)
        self._count(self._addresses, address, now)
        self._count(self._users, username, now)

    def succeeded(self, username: str, address: str, now: float | None = None) -> None:
        """Forget this pair's failures and remember the address as one the user signs in from."""
        now = time.monotonic() if now is None else now
        self._pairs.pop((username, address), None)
        self._trusted.pop((username, address), None)
        self._trusted[(username, address)] = now
        _bound(self._trusted, self.max_keys)

    def pairs_remembered(self) -> int:
        """Return how many (user, address) pairs have failures on record."""
        return len(self._pairs)

    def _wait(self, failures: _Failures | None, allowance: int, now: float) -> float:
        if failures is None or now - failures.last > self.window_seconds:
            return 0.0
        over = failures.count - allowance
        if over < 0:
            return 0.0
        delay = min(2.0**over, self.max_delay_seconds)
        return max(0.0, failures.last + delay - now)

    def _count(self, table: dict[_Key, _Failures], key: _Key, now: float) -> None:
        failures = table.pop(key, None)
        if failures is None or now - failures.last > self.window_seconds:
            failures = _Failures()
        failures.count += 1
        failures.last = now
        table[key] = failures  # re-inserted: the dict's order is the order of last use
        _bound(table, self.max_keys)


def _bound(table: dict[Any, Any], max_keys: int) -> None:
    while len(table) > max_keys:
        del table[next(iter(table))]
