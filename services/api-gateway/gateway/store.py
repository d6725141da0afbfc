"""The gateway's SQL: users, the accounts a tenant may see, and the audit log."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from prepaid_common.contracts.api.gateway import Role
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.tables import api_keys, audit, idempotency, user_accounts, users


async def user_exists(session: AsyncSession, username: str) -> bool:
    """Return whether a user of that name exists."""
    found = await session.scalar(select(users.c.username).where(users.c.username == username))
    return found is not None


async def password_hash_and_role(session: AsyncSession, username: str) -> tuple[str, Role] | None:
    """Return a user's stored password hash and role, or None if there is no such user."""
    row = (
        await session.execute(
            select(users.c.password_hash, users.c.role).where(users.c.username == username)
        )
    ).first()
    return None if row is None else (row.password_hash, row.role)


@dataclass(frozen=True)
class StoredUser:
    """A user row as signing in and token checks need it."""

    username: str
    password_hash: str
    role: Role
    token_version: int
    disabled: bool


async def user(session: AsyncSession, username: str) -> StoredUser | None:
    """Return a user, or None if there is no such user."""
    row = (
        await session.execute(
            select(
                users.c.username,
                users.c.password_hash,
                users.c.role,
                users.c.token_version,
                users.c.disabled,
            ).where(users.c.username == username)
        )
    ).first()
    if row is None:
        return None
    return StoredUser(
        username=row.username,
        password_hash=row.password_hash,
        role=row.role,
        token_version=row.token_version,
        disabled=bool(row.disabled),
    )


async def user_page(
    session: AsyncSession, *, limit: int, offset: int
) -> tuple[list[tuple[StoredUser, list[str]]], int]:
    """Return a page of users by name with their accounts, and how many there are."""
    total = await session.scalar(select(func.count()).select_from(users))
    names = (
        await session.scalars(
            select(users.c.username).order_by(users.c.username).limit(limit).offset(offset)
        )
    ).all()
    page: list[tuple[StoredUser, list[str]]] = []
    links = (
        await session.execute(
            select(user_accounts.c.username, user_accounts.c.account_id)
            .where(user_accounts.c.username.in_(names))
            .order_by(user_accounts.c.account_id)
        )
    ).all()
    for name in names:
        found = await user(session, name)
        if found is not None:
            page.append((found, [link.account_id for link in links if link.username == name]))
    return page, total or 0


async def change_user(
    session: AsyncSession,
    username: str,
    *,
    password_hash: str | None = None,
    disabled: bool | None = None,
) -> bool:
    """Change a user's password or state and revoke its tokens; return whether it exists."""
    values: dict[str, Any] = {"token_version": users.c.token_version + 1}
    if password_hash is not None:
        values["password_hash"] = password_hash
    if disabled is not None:
        values["disabled"] = disabled
    result = await session.execute(
        update(users).where(users.c.username == username).values(**values)
    )
    return bool(cast(CursorResult[Any], result).rowcount)


async def delete_user(session: AsyncSession, username: str) -> bool:
    """Delete a user and its account links; return whether it existed."""
    await session.execute(delete(user_accounts).where(user_accounts.c.username == username))
    result = await session.execute(delete(users).where(users.c.username == username))
    return bool(cast(CursorResult[Any], result).rowcount)


async def enabled_admins(session: AsyncSession) -> int:
    """Return how many admins are not disabled."""
    count = await session.scalar(
        select(func.count())
        .select_from(users)
        .where(users.c.role == "admin", users.c.disabled.is_(False))
    )
    return count or 0


async def role_of(session: AsyncSession, username: str) -> str | None:
    """Return a user's role, or None if there is no such user."""
    role: str | None = await session.scalar(
        select(users.c.role).where(users.c.username == username)
    )
    return role


async def accounts_of(session: AsyncSession, username: str) -> Sequence[str]:
    """Return the ids of the accounts a user is linked to."""
    return (
        await session.scalars(
            select(user_accounts.c.account_id).where(user_accounts.c.username == username)
        )
    ).all()


async def add_user(
    session: AsyncSession,
    *,
    username: str,
    password_hash: str,
    role: Role,
    account_ids: Iterable[str],
    at: datetime,
) -> None:
    """Insert a user and link it to its accounts (each once)."""
    await session.execute(
        insert(users).values(
            username=username, password_hash=password_hash, role=role, created_at=at
        )
    )
    for account_id in sorted(set(account_ids)):
        await session.execute(
            insert(user_accounts).values(username=username, account_id=account_id)
        )


async def append_audit(
    session: AsyncSession,
    *,
    at: datetime,
    actor: str,
    action: str,
    target: str,
    detail: Mapping[str, Any],
) -> None:
    """Append one operator action to the audit log."""
    await session.execute(
        insert(audit).values(at=at, actor=actor, action=action, target=target, detail=detail)
    )


async def audit_page(
    session: AsyncSession, *, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """Return a page of the audit log, newest first, and how many actions it holds."""
    total = await session.scalar(select(func.count()).select_from(audit))
    rows = (
        await session.execute(select(audit).order_by(audit.c.id.desc()).limit(limit).offset(offset))
    ).all()
    return [dict(row._mapping) for row in rows], total or 0


# --- API keys ------------------------------------------------------------------------------
async def add_api_key(
    session: AsyncSession,
    *,
    key_id: str,
    name: str,
    key_hash: str,
    scopes: Sequence[str],
    created_by: str,
    at: datetime,
) -> None:
    """Insert an API key (its hash)."""
    await session.execute(
        insert(api_keys).values(
            id=key_id,
            name=name,
            key_hash=key_hash,
            scopes=list(scopes),
            created_by=created_by,
            created_at=at,
        )
    )


async def api_key_by_hash(session: AsyncSession, key_hash: str) -> dict[str, Any] | None:
    """Return the API key with this hash, or None."""
    row = (await session.execute(select(api_keys).where(api_keys.c.key_hash == key_hash))).first()
    return None if row is None else dict(row._mapping)


async def api_key_list(session: AsyncSession) -> list[dict[str, Any]]:
    """Return every API key, newest first."""
    rows = (await session.execute(select(api_keys).order_by(api_keys.c.created_at.desc()))).all()
    return [dict(row._mapping) for row in rows]


async def touch_api_key(session: AsyncSession, key_id: str, at: datetime) -> None:
    """Record when an API key was last used."""
    await session.execute(update(api_keys).where(api_keys.c.id == key_id).values(last_used_at=at))


async def revoke_api_key(session: AsyncSession, key_id: str, at: datetime) -> bool:
    """Revoke an API key (once); return whether it existed."""
    result = await session.execute(
        update(api_keys)
        .where(api_keys.c.id == key_id)
        .values(revoked_at=func.coalesce(api_keys.c.revoked_at, at))
    )
    return bool(cast(CursorResult[Any], result).rowcount)


# --- answers kept per Idempotency-Key --------------------------------------------------------
async def kept_answer(
    session: AsyncSession, *, principal: str, key: str
) -> tuple[str, int, str] | None:
    """Return (request hash, status, body) kept for a principal's key, or None."""
    row = (
        await session.execute(
            select(idempotency.c.request_hash, idempotency.c.status, idempotency.c.body).where(
                idempotency.c.principal == principal, idempotency.c.key == key
            )
        )
    ).first()
    return None if row is None else (row.request_hash, row.status, row.body)


async def keep_answer(
    session: AsyncSession,
    *,
    principal: str,
    key: str,
    request_hash: str,
    status: int,
    body: str,
    at: datetime,
    forget_before: datetime,
) -> None:
    """Keep the first answer for a principal's key; forget answers older than a day."""
    await session.execute(delete(idempotency).where(idempotency.c.created_at < forget_before))
    await session.execute(
        insert(idempotency).values(
            principal=principal,
            key=key,
            request_hash=request_hash,
            status=status,
            body=body,
            created_at=at,
        )
    )
