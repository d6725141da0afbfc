"""The gateway's own use cases: users, signing in, and the audit log (one unit of work each)."""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from prepaid_common.contracts import utcnow
from prepaid_common.contracts.api.gateway import AuditEntry, AuditPage, Role, Token
from prepaid_common.errors import Conflict, Unauthorized
from prepaid_common.outbox import ServiceStore

from gateway import store
from gateway.auth import hash_password, issue_token, read_token, verify_password
from gateway.domain import LoginThrottle, Principal, check_new_user
from gateway.settings import GatewaySettings

ADMIN = "admin"


class GatewayOperations:
    """What the public API asks of the gateway itself (everything else it asks of a service)."""

    def __init__(self, *, store: ServiceStore, settings: GatewaySettings) -> None:
        self.store = store
        self.settings = settings
        self.throttle = LoginThrottle()

    # --- users -------------------------------------------------------------------------
    async def create_user(
        self, *, username: str, password: str, role: Role, account_ids: Sequence[str] = ()
    ) -> None:
        """Create a user; tenants are linked to the accounts they may see."""
        check_new_user(role=role, password=password)
        async with self.store.unit_of_work() as uow:
            if await store.user_exists(uow.session, username):
                raise Conflict(f"user {username} already exists")
            await store.add_user(
                uow.session,
                username=username,
                password_hash=hash_password(password),
                role=role,
                account_ids=account_ids,
                at=utcnow(),
            )

    async def ensure_admin(self) -> str | None:
        """Create the ``admin`` user on first start; return a generated password if any."""
        async with self.store.sessionmaker() as session:
            if await store.user_exists(session, ADMIN):
                return None
        configured = self.settings.admin_password
        password = configured.get_secret_value() if configured else secrets.token_urlsafe(12)
        await self.create_user(username=ADMIN, password=password, role="admin")
        return None if configured else password

    # --- signing in ----------------------------------------------------------------------
    async def authenticate(self, *, username: str, password: str) -> Principal | None:
        """Return the principal for valid credentials, else None."""
        async with self.store.sessionmaker() as session:
            stored = await store.password_hash_and_role(session, username)
        if stored is None or not verify_password(stored[0], password):
            return None
        return await self.principal(username=username, role=stored[1])

    async def principal(self, *, username: str, role: Role) -> Principal | None:
        """Load a user's principal (None if the user is gone or changed role)."""
        async with self.store.sessionmaker() as session:
            if await store.role_of(session, username) != role:
                return None
            accounts = await store.accounts_of(session, username)
        return Principal(username=username, role=role, account_ids=frozenset(accounts))

    async def log_in(self, *, username: str, password: str) -> Token:
        """Exchange a user name and password for a bearer token (too many failures lock it)."""
        if self.throttle.blocked(username):
            raise Unauthorized("too many failed logins; try again later")
        principal = await self.authenticate(username=username, password=password)
        if principal is None:
            self.throttle.failed(username)
            raise Unauthorized("wrong user name or password")
        self.throttle.succeeded(username)
        ttl = timedelta(minutes=self.settings.token_ttl_minutes)
        token = issue_token(
            username=principal.username,
            role=principal.role,
            secret=self.settings.token_secret.get_secret_value(),
            ttl=ttl,
        )
        return Token(access_token=token, expires_in=int(ttl.total_seconds()))

    async def principal_of_token(self, *, token: str | None) -> Principal:
        """Return who holds a bearer token; refuse a missing, bad or orphaned one."""
        if not token:
            raise Unauthorized("missing bearer token")
        claims = read_token(token, secret=self.settings.token_secret.get_secret_value())
        if claims is None:
            raise Unauthorized("invalid or expired token")
        username, role = claims
        principal = await self.principal(username=username, role=role)
        if principal is None:
            raise Unauthorized("user no longer exists")
        return principal

    # --- the audit log -------------------------------------------------------------------
    async def record_audit(
        self, *, actor: str, action: str, target: str, detail: Mapping[str, Any]
    ) -> None:
        """Append an operator action to the audit log."""
        async with self.store.unit_of_work() as uow:
            await store.append_audit(
                uow.session, at=utcnow(), actor=actor, action=action, target=target, detail=detail
            )

    async def audit_page(self, *, limit: int, offset: int) -> AuditPage:
        """Return operator actions, newest first."""
        async with self.store.sessionmaker() as session:
            rows, total = await store.audit_page(session, limit=limit, offset=offset)
        return AuditPage(
            items=[AuditEntry.model_validate(row) for row in rows],
            total=total,
            limit=limit,
            offset=offset,
        )
