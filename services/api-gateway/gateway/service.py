"""The gateway service: owns users and the audit log, serves the public REST API."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from prepaid_common.bus import MessageBus
from prepaid_common.contracts import utcnow
from prepaid_common.errors import Conflict, Invalid
from prepaid_common.service import Service
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.auth import ROLES, LoginThrottle, Principal, Role, hash_password, verify_password
from gateway.settings import GatewaySettings
from gateway.tables import audit, plumbing, user_accounts, users
from gateway.upstream import Upstreams

log = logging.getLogger(__name__)


class GatewayService(Service):
    name = "gateway"
    migrations_dir = Path(__file__).parent / "migrations"
    tables = plumbing

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        bus: MessageBus,
        upstreams: Upstreams,
        settings: GatewaySettings,
    ) -> None:
        super().__init__(engine=engine, bus=bus)
        self.upstreams = upstreams
        self.settings = settings
        self.throttle = LoginThrottle()

    # --- users -------------------------------------------------------------------------
    async def create_user(
        self, *, username: str, password: str, role: Role, account_ids: Sequence[str] = ()
    ) -> None:
        """Create a user; tenants are linked to the accounts they may see."""
        if role not in ROLES:
            raise Invalid(f"role must be one of {', '.join(ROLES)}")
        if len(password) < 8:
            raise Invalid("password must be at least 8 characters")
        async with self.store.unit_of_work() as uow:
            exists = await uow.session.scalar(
                select(users.c.username).where(users.c.username == username)
            )
            if exists is not None:
                raise Conflict(f"user {username} already exists")
            await uow.session.execute(
                insert(users).values(
                    username=username,
                    password_hash=hash_password(password),
                    role=role,
                    created_at=utcnow(),
                )
            )
            for account_id in sorted(set(account_ids)):
                await uow.session.execute(
                    insert(user_accounts).values(username=username, account_id=account_id)
                )

    async def authenticate(self, username: str, password: str) -> Principal | None:
        """Return the principal for valid credentials, else None."""
        async with self.store.sessionmaker() as session:
            row = (await session.execute(select(users).where(users.c.username == username))).first()
        if row is None or not verify_password(row.password_hash, password):
            return None
        return await self.principal(username, row.role)

    async def principal(self, username: str, role: Role) -> Principal | None:
        """Load a user's principal (None if the user is gone or changed role)."""
        async with self.store.sessionmaker() as session:
            stored_role = await session.scalar(
                select(users.c.role).where(users.c.username == username)
            )
            if stored_role != role:
                return None
            accounts = (
                await session.scalars(
                    select(user_accounts.c.account_id).where(user_accounts.c.username == username)
                )
            ).all()
        return Principal(username=username, role=role, account_ids=frozenset(accounts))

    async def ensure_admin(self) -> str | None:
        """Create the ``admin`` user on first start; return a generated password if any."""
        async with self.store.sessionmaker() as session:
            exists = await session.scalar(
                select(users.c.username).where(users.c.username == "admin")
            )
        if exists is not None:
            return None
        configured = self.settings.admin_password
        password = configured.get_secret_value() if configured else secrets.token_urlsafe(12)
        await self.create_user(username="admin", password=password, role="admin")
        return None if configured else password

    async def record(self, actor: str, action: str, target: str, detail: dict[str, Any]) -> None:
        """Append an operator action to the audit log."""
        async with self.store.unit_of_work() as uow:
            await uow.session.execute(
                insert(audit).values(
                    at=utcnow(), actor=actor, action=action, target=target, detail=detail
                )
            )

    def public_app(self) -> FastAPI:
        """Build the public REST API."""
        from gateway.api import build_public_app

        return build_public_app(self)
