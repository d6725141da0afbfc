"""Accounts: terms, groups, and the account view (set-at-a-time for a page)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from prepaid_common.contracts.api.billing import (
    AccountChanges,
    AccountTerms,
    AccountView,
    MeterSupply,
    Page,
)
from prepaid_common.errors import Invalid, NotFound
from sqlalchemy import Column, delete, func, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from billing import bulk
from billing.store.balances import account_balances
from billing.tables import account_groups, accounts, meters

# What each account term of a PATCH writes; ``groups`` is written to account_groups.
TERM_COLUMNS: dict[str, Column[Any]] = {
    "name": accounts.c.name,
    "tariff_id": accounts.c.tariff_id,
    "mode": accounts.c.mode,
    "trip_line": accounts.c.trip_line,
    "warning_line": accounts.c.warning_line,
    "overdraft_limit": accounts.c.overdraft_limit,
    "balance_cap": accounts.c.balance_cap,
    "debt_share": accounts.c.debt_share,
    "debt_daily": accounts.c.debt_daily,
    "protected": accounts.c.protected,
    "friendly_debt_limit": accounts.c.friendly_debt_limit,
}


async def account_row(session: AsyncSession, account_id: str) -> Row[Any] | None:
    """Return an account's row, or None."""
    return (await session.execute(select(accounts).where(accounts.c.id == account_id))).first()


async def require_account(session: AsyncSession, account_id: str) -> Row[Any]:
    """Return an account's row; NotFound if there is none."""
    row = await account_row(session, account_id)
    if row is None:
        raise NotFound(f"account {account_id} does not exist")
    return row


async def account_ids(session: AsyncSession) -> list[str]:
    """Return the id of every account."""
    return list((await session.scalars(select(accounts.c.id))).all())


async def insert_account(
    session: AsyncSession,
    *,
    account_id: str,
    name: str,
    tariff_id: str,
    terms: AccountTerms,
    now: datetime,
) -> None:
    """Create an account with its terms (not yet warned)."""
    await session.execute(
        insert(accounts).values(
            id=account_id,
            name=name,
            tariff_id=tariff_id,
            mode=terms.mode,
            trip_line=terms.trip_line,
            warning_line=terms.warning_line,
            overdraft_limit=terms.overdraft_limit,
            balance_cap=terms.balance_cap,
            debt_share=terms.debt_share,
            debt_daily=terms.debt_daily,
            protected=terms.protected,
            friendly_debt_limit=terms.friendly_debt_limit,
            warned=False,
            created_at=now,
        )
    )


async def change_terms(session: AsyncSession, account_id: str, changes: AccountChanges) -> None:
    """Write the terms a PATCH gave (a term given as null clears it where it may be null)."""
    values: dict[Column[Any], Any] = {}
    for field in sorted(changes.model_fields_set & TERM_COLUMNS.keys()):
        column, value = TERM_COLUMNS[field], getattr(changes, field)
        if value is None and not column.nullable:
            raise Invalid(f"{field} cannot be null")
        values[column] = value
    if values:
        await session.execute(update(accounts).where(accounts.c.id == account_id).values(values))


async def set_warned(session: AsyncSession, account_id: str, warned: bool) -> None:
    """Record whether the low-balance warning was raised."""
    await session.execute(update(accounts).where(accounts.c.id == account_id).values(warned=warned))


async def add_groups(session: AsyncSession, account_id: str, groups: Sequence[str]) -> None:
    """Put an account in groups."""
    for group in sorted(set(groups)):
        await session.execute(
            insert(account_groups).values(account_id=account_id, group_name=group)
        )


async def replace_groups(session: AsyncSession, account_id: str, groups: Sequence[str]) -> None:
    """Put an account in exactly these groups."""
    await session.execute(delete(account_groups).where(account_groups.c.account_id == account_id))
    await add_groups(session, account_id, groups)


async def groups_of(session: AsyncSession, account_id: str) -> set[str]:
    """Return the groups an account is in."""
    return set(
        (
            await session.scalars(
                select(account_groups.c.group_name).where(account_groups.c.account_id == account_id)
            )
        ).all()
    )


async def account_views(session: AsyncSession, rows: Sequence[Row[Any]]) -> list[AccountView]:
    """Return the views of account rows: three queries for the whole set, not four each."""
    ids = [row.id for row in rows]
    if not ids:
        return []
    bound: dict[str, list[MeterSupply]] = {account_id: [] for account_id in ids}
    for account_id, meter_id, supply in (
        await session.execute(
            select(meters.c.account_id, meters.c.meter_id, meters.c.supply)
            .where(bulk.one_of(session, meters.c.account_id, ids))
            .order_by(meters.c.meter_id)
        )
    ).all():
        bound[account_id].append(MeterSupply(meter_id=meter_id, supply=supply))
    groups: dict[str, list[str]] = {account_id: [] for account_id in ids}
    for account_id, group in (
        await session.execute(
            select(account_groups.c.account_id, account_groups.c.group_name)
            .where(bulk.one_of(session, account_groups.c.account_id, ids))
            .order_by(account_groups.c.group_name)
        )
    ).all():
        groups[account_id].append(group)
    money = await account_balances(session, ids)
    views = []
    for row in rows:
        terms = dict(row._mapping)
        terms.pop("warned")
        balance, arrears = money[row.id]
        own = bound[row.id]
        views.append(
            AccountView(
                **terms,
                balance=balance,
                arrears=arrears,
                meter_ids=[m.meter_id for m in own],
                supply="off" if any(m.supply == "off" for m in own) else "on",
                meters=own,
                groups=groups[row.id],
            )
        )
    return views


async def account_view(session: AsyncSession, account_id: str) -> AccountView:
    """Return one account's view; NotFound if there is none."""
    [view] = await account_views(session, [await require_account(session, account_id)])
    return view


async def account_page(
    session: AsyncSession,
    *,
    ids: Sequence[str] | None,
    group: str | None,
    limit: int,
    offset: int,
) -> Page[AccountView]:
    """Return a page of accounts by id, optionally only the given ids or one group's."""
    query = select(accounts)
    if ids is not None:
        query = query.where(accounts.c.id.in_(ids))
    if group is not None:
        query = query.where(
            accounts.c.id.in_(
                select(account_groups.c.account_id).where(account_groups.c.group_name == group)
            )
        )
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = (await session.execute(query.order_by(accounts.c.id).limit(limit).offset(offset))).all()
    return Page[AccountView](
        items=await account_views(session, rows), total=total or 0, limit=limit, offset=offset
    )
