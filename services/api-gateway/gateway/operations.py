"""The gateway's own use cases: users, signing in, and the audit log (one unit of work each)."""

from __future__ import annotations

import hashlib
import json
import math
import secrets
from collections.abc import Mapping, Sequence
from datetime import timedelta
from importlib import resources
from typing import Any

from prepaid_common.contracts import utcnow
from prepaid_common.contracts.api.gateway import (
    ApiKeyCreated,
    ApiKeyList,
    ApiKeyView,
    AuditEntry,
    AuditPage,
    Role,
    Scope,
    Token,
    UserPage,
    UserState,
)
from prepaid_common.errors import Conflict, Invalid, NotFound, TooManyRequests, Unauthorized
from prepaid_common.outbox import ServiceStore

from gateway import store
from gateway.auth import (
    hash_password_off_loop,
    issue_token,
    read_token,
    verify_password_off_loop,
)
from gateway.domain import SCOPES, LoginThrottle, Principal, check_new_user, check_password
from gateway.settings import GatewaySettings

ADMIN = "admin"
# What every API key starts with: a bearer token that is a key, not a JWT.
API_KEY_PREFIX = "pk_"
# A key's last use is written at most this often (not on every call).
API_KEY_USE_PRECISION = timedelta(minutes=1)
# How long an answer is kept for its Idempotency-Key.
IDEMPOTENCY_KEPT_FOR = timedelta(hours=24)

# Passwords too common to take (a short list shipped with the gateway).
COMMON_PASSWORDS = frozenset(
    json.loads(resources.files("gateway").joinpath("common-passwords.json").read_text())
)


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
        check_new_user(username=username, role=role, password=password, common=COMMON_PASSWORDS)
        password_hash = await hash_password_off_loop(password)
        async with self.store.unit_of_work() as uow:
            if await store.user_exists(uow.session, username):
                raise Conflict(f"user {username} already exists")
            await store.add_user(
                uow.session,
                username=username,
                password_hash=password_hash,
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

    async def user_page(self, *, limit: int, offset: int) -> UserPage:
        """Return users by name, with their accounts and whether they are disabled."""
        async with self.store.sessionmaker() as session:
            rows, total = await store.user_page(session, limit=limit, offset=offset)
        return UserPage(
            items=[
                UserState(
                    username=user.username,
                    role=user.role,
                    account_ids=accounts,
                    disabled=user.disabled,
                )
                for user, accounts in rows
            ],
            total=total,
            limit=limit,
            offset=offset,
        )

    async def set_disabled(self, *, username: str, disabled: bool, by: str) -> None:
        """Disable (or enable) a user; every token it holds stops working at once."""
        if username == by and disabled:
            raise Conflict("you cannot disable yourself")
        async with self.store.unit_of_work() as uow:
            found = await store.user(uow.session, username)
            if found is None:
                raise NotFound(f"user {username} does not exist")
            if disabled and found.role == "admin" and await store.enabled_admins(uow.session) <= 1:
                raise Conflict("the last enabled admin cannot be disabled")
            await store.change_user(uow.session, username, disabled=disabled)

    async def delete_user(self, *, username: str, by: str) -> None:
        """Delete a user (not oneself, not the last admin)."""
        if username == by:
            raise Conflict("you cannot delete yourself")
        async with self.store.unit_of_work() as uow:
            found = await store.user(uow.session, username)
            if found is None:
                raise NotFound(f"user {username} does not exist")
            if found.role == "admin" and await store.enabled_admins(uow.session) <= 1:
                raise Conflict("the last enabled admin cannot be deleted")
            await store.delete_user(uow.session, username)

    async def change_password(
        self, *, username: str, current_password: str, new_password: str
    ) -> None:
        """Change one's own password (the current one is checked); revoke every token."""
        async with self.store.sessionmaker() as session:
            found = await store.user(session, username)
        if found is None or not await verify_password_off_loop(
            found.password_hash, current_password
        ):
            raise Invalid("the current password is wrong")
        await self.set_password(username=username, password=new_password)

    async def set_password(self, *, username: str, password: str) -> None:
        """Set a user's password (policy checked), enable it and revoke its tokens."""
        check_password(username=username, password=password, common=COMMON_PASSWORDS)
        password_hash = await hash_password_off_loop(password)
        async with self.store.unit_of_work() as uow:
            if not await store.change_user(
                uow.session, username, password_hash=password_hash, disabled=False
            ):
                raise NotFound(f"user {username} does not exist")

    async def log_out(self, *, username: str) -> None:
        """Revoke every token the user holds."""
        async with self.store.unit_of_work() as uow:
            await store.change_user(uow.session, username)

    # --- signing in ----------------------------------------------------------------------
    async def authenticate(self, *, username: str, password: str) -> Principal | None:
        """Return the principal for valid credentials, else None (same time for any user)."""
        async with self.store.sessionmaker() as session:
            found = await store.user(session, username)
        matches = await verify_password_off_loop(
            None if found is None else found.password_hash, password
        )
        if found is None or not matches or found.disabled:
            return None
        return await self.principal(username=username, role=found.role)

    async def principal(
        self, *, username: str, role: Role, version: int | None = None
    ) -> Principal | None:
        """Load a user's principal (None if the user is gone, disabled, changed role, or the
        token's version was revoked)."""
        async with self.store.sessionmaker() as session:
            found = await store.user(session, username)
            if found is None or found.role != role or found.disabled:
                return None
            if version is not None and version != found.token_version:
                return None
            accounts = await store.accounts_of(session, username)
        return Principal(username=username, role=role, account_ids=frozenset(accounts))

    async def log_in(self, *, username: str, password: str, address: str = "") -> Token:
        """Exchange a user name and password for a bearer token.

        Failures slow down the (user, address) pair and the address; see LoginThrottle.
        """
        wait = self.throttle.retry_after(username, address)
        if wait > 0:
            raise TooManyRequests(
                "too many failed logins; try again later", retry_after=math.ceil(wait)
            )
        principal = await self.authenticate(username=username, password=password)
        if principal is None:
            self.throttle.failed(username, address)
            raise Unauthorized("wrong user name or password")
        self.throttle.succeeded(username, address)
        return await self.token_for(username=principal.username)

    async def token_for(self, *, username: str, ttl: timedelta | None = None) -> Token:
        """Sign a token for a user at its current token version."""
        async with self.store.sessionmaker() as session:
            found = await store.user(session, username)
        if found is None:
            raise NotFound(f"user {username} does not exist")
        lasting = ttl or timedelta(minutes=self.settings.token_ttl_minutes)
        token = issue_token(
            username=found.username,
            role=found.role,
            secret=self.settings.token_secret.get_secret_value(),
            ttl=lasting,
            version=found.token_version,
        )
        return Token(access_token=token, expires_in=int(lasting.total_seconds()))

    async def principal_of_token(self, *, token: str | None) -> Principal:
        """Return who holds a bearer token; refuse a missing, bad, revoked or orphaned one."""
        if not token:
            raise Unauthorized("missing bearer token")
        claims = read_token(token, secret=self.settings.token_secret.get_secret_value())
        if claims is None:
            raise Unauthorized("invalid or expired token")
        principal = await self.principal(
            username=claims.username, role=claims.role, version=claims.version
        )
        if principal is None:
            raise Unauthorized("the token was revoked or its user no longer exists")
        return principal

    # --- API keys ---------------------------------------------------------------------------
    async def create_api_key(
        self, *, name: str, scopes: Sequence[Scope], created_by: str
    ) -> ApiKeyCreated:
        """Make an API key; the key is returned this once, only its hash is kept."""
        key_id = secrets.token_hex(4)
        key = f"{API_KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        at = utcnow()
        ordered = [scope for scope in SCOPES if scope in scopes]
        async with self.store.unit_of_work() as uow:
            await store.add_api_key(
                uow.session,
                key_id=key_id,
                name=name,
                key_hash=_key_hash(key),
                scopes=ordered,
                created_by=created_by,
                at=at,
            )
        return ApiKeyCreated(
            id=key_id,
            name=name,
            scopes=ordered,
            created_by=created_by,
            created_at=at,
            last_used_at=None,
            revoked_at=None,
            key=key,
        )

    async def api_keys(self) -> ApiKeyList:
        """List every API key, newest first (never the keys)."""
        async with self.store.sessionmaker() as session:
            rows = await store.api_key_list(session)
        return ApiKeyList(items=[ApiKeyView.model_validate(_api_key_row(row)) for row in rows])

    async def revoke_api_key(self, *, key_id: str) -> None:
        """Revoke an API key: it stops working at once."""
        async with self.store.unit_of_work() as uow:
            if not await store.revoke_api_key(uow.session, key_id, utcnow()):
                raise NotFound(f"API key {key_id} does not exist")

    async def principal_of_api_key(self, *, key: str) -> Principal:
        """Return the principal an API key acts as (an operator with its scopes)."""
        async with self.store.sessionmaker() as session:
            row = await store.api_key_by_hash(session, _key_hash(key))
        if row is None or row["revoked_at"] is not None:
            raise Unauthorized("invalid or revoked API key")
        now = utcnow()
        last = row["last_used_at"]
        if last is None or now - last > API_KEY_USE_PRECISION:
            async with self.store.unit_of_work() as uow:
                await store.touch_api_key(uow.session, row["id"], now)
        return Principal(
            username=f"key:{row['id']}", role="operator", scopes=frozenset(row["scopes"])
        )

    # --- answers kept per Idempotency-Key ----------------------------------------------------
    async def kept_answer(self, *, principal: str, key: str) -> tuple[str, int, str] | None:
        """Return (request hash, status, body) kept for the principal's key, or None."""
        async with self.store.sessionmaker() as session:
            return await store.kept_answer(session, principal=principal, key=key)

    async def keep_answer(
        self, *, principal: str, key: str, request_hash: str, status: int, body: str
    ) -> None:
        """Keep the first answer to the principal's key for a day."""
        at = utcnow()
        async with self.store.unit_of_work() as uow:
            await store.keep_answer(
                uow.session,
                principal=principal,
                key=key,
                request_hash=request_hash,
                status=status,
                body=body,
                at=at,
                forget_before=at - IDEMPOTENCY_KEPT_FOR,
            )

    # --- the audit log -------------------------------------------------------------------
    async def record_audit(
        self, *, actor: str, action: str, target: str, detail: Mapping[str, Any]
    ) -> None:
        """Append an operator action to the audit log.

        The operator of record is the authenticated ``actor``: an ``operator`` a client put
        in a request body never reaches the log (it is replaced by the actor).
        """
        kept = dict(detail)
        if "operator" in kept:
            kept["operator"] = actor
        async with self.store.unit_of_work() as uow:
            await store.append_audit(
                uow.session,
                at=utcnow(),
                actor=actor,
                action=action,
                target=target[:200],
                detail=kept,
            )

    async def record_refusal(self, *, actor: str, method: str, path: str, why: str) -> None:
        """Audit a request refused to an authenticated caller (a role or scope it lacks)."""
        await self.record_audit(
            actor=actor,
            action="access.refused",
            target=f"{method} {path}"[:200],
            detail={"method": method, "path": path[:200], "why": why[:200]},
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


def _key_hash(key: str) -> str:
    # A key has 256 random bits: a plain SHA-256 is enough (no salt or slow hash needed).
    return hashlib.sha256(key.encode()).hexdigest()


def _api_key_row(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "key_hash"}
