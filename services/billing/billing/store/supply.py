"""Holds (保电), load shedding, and the record of supply changes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from prepaid_common.contracts import utcnow
from prepaid_common.contracts.api.billing import HoldView, Items, ShedView, SupplyEvent, Window
from prepaid_common.errors import NotFound
from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from billing import bulk
from billing.tables import account_groups, accounts, holds, meters, sheds, supply_events


# --- holds ---------------------------------------------------------------------------------
async def insert_hold(
    session: AsyncSession,
    *,
    hold_id: str,
    scope: str,
    target: str,
    until: datetime | None,
    reason: str,
    operator: str,
) -> None:
    """Record a hold."""
    await session.execute(
        insert(holds).values(
            id=hold_id,
            scope=scope,
            target=target,
            until=until,
            reason=reason,
            operator=operator,
            created_at=utcnow(),
            released_at=None,
        )
    )


async def release_hold(session: AsyncSession, hold_id: str) -> Row[Any]:
    """Release a hold (once); return its row."""
    row = (await session.execute(select(holds).where(holds.c.id == hold_id))).first()
    if row is None:
        raise NotFound(f"hold {hold_id} does not exist")
    if row.released_at is None:
        await session.execute(
            update(holds).where(holds.c.id == hold_id).values(released_at=utcnow())
        )
    return row


def _in_force(now: datetime) -> Any:
    return and_(holds.c.released_at.is_(None), or_(holds.c.until.is_(None), holds.c.until > now))


async def held(session: AsyncSession, meter_id: str, groups: set[str], now: datetime) -> bool:
    """Whether a hold on the meter, one of its account's groups, or everyone is in force."""
    targets = [
        and_(holds.c.scope == "meter", holds.c.target == meter_id),
        holds.c.scope == "global",
    ]
    if groups:
        targets.append(and_(holds.c.scope == "group", holds.c.target.in_(groups)))
    found = await session.scalar(select(holds.c.id).where(or_(*targets), _in_force(now)).limit(1))
    return found is not None


async def any_hold_in_force(session: AsyncSession, now: datetime) -> bool:
    """Whether any hold at all is in force."""
    return await session.scalar(select(holds.c.id).where(_in_force(now)).limit(1)) is not None


async def holds_in_force(session: AsyncSession, now: datetime) -> Items[HoldView]:
    """Return the holds in force (neither released nor past their ``until``), oldest first."""
    rows = (
        await session.execute(select(holds).where(_in_force(now)).order_by(holds.c.created_at))
    ).all()
    return Items[HoldView](items=[HoldView.model_validate(r._mapping) for r in rows])


# --- load shedding -------------------------------------------------------------------------
async def insert_shed(
    session: AsyncSession, *, shed_id: str, group: str, reason: str, operator: str
) -> None:
    """Record the start of a group's load shedding."""
    await session.execute(
        insert(sheds).values(
            id=shed_id,
            group_name=group,
            reason=reason,
            operator=operator,
            started_at=utcnow(),
            ended_at=None,
        )
    )


async def end_shed(session: AsyncSession, shed_id: str) -> Row[Any]:
    """End a load shedding (once); return its row."""
    row = (await session.execute(select(sheds).where(sheds.c.id == shed_id))).first()
    if row is None:
        raise NotFound(f"shedding {shed_id} does not exist")
    if row.ended_at is None:
        await session.execute(update(sheds).where(sheds.c.id == shed_id).values(ended_at=utcnow()))
    return row


async def shedding_group(session: AsyncSession, groups: set[str]) -> str | None:
    """Return one of the groups whose shedding is in force, or None."""
    found: str | None = await session.scalar(
        select(sheds.c.group_name)
        .where(sheds.c.group_name.in_(groups), sheds.c.ended_at.is_(None))
        .limit(1)
    )
    return found


async def shed_accounts(session: AsyncSession, account_ids: Sequence[str]) -> set[str]:
    """Return those of the accounts in a group whose shedding is in force."""
    return set(
        (
            await session.scalars(
                select(account_groups.c.account_id)
                .join(sheds, sheds.c.group_name == account_groups.c.group_name)
                .where(
                    sheds.c.ended_at.is_(None),
                    bulk.one_of(session, account_groups.c.account_id, account_ids),
                )
            )
        ).all()
    )


async def recent_sheds(session: AsyncSession) -> Items[ShedView]:
    """Return the 200 latest load sheddings, newest first."""
    rows = (
        await session.execute(select(sheds).order_by(sheds.c.started_at.desc()).limit(200))
    ).all()
    return Items[ShedView](items=[ShedView.model_validate(r._mapping) for r in rows])


async def group_exists(session: AsyncSession, group: str) -> bool:
    """Whether any account is in the group (a group exists only through its accounts)."""
    found = await session.scalar(
        select(account_groups.c.account_id).where(account_groups.c.group_name == group).limit(1)
    )
    return found is not None


# --- who is concerned ----------------------------------------------------------------------
async def accounts_in_scope(session: AsyncSession, scope: str, target: str) -> list[str]:
    """Return the accounts a hold or a shedding of this scope and target concerns."""
    if scope == "global":
        return list((await session.scalars(select(accounts.c.id))).all())
    if scope == "group":
        return list(
            (
                await session.scalars(
                    select(account_groups.c.account_id).where(account_groups.c.group_name == target)
                )
            ).all()
        )
    owner = await session.scalar(select(meters.c.account_id).where(meters.c.meter_id == target))
    return [] if owner is None else [owner]


# --- supply events -------------------------------------------------------------------------
async def record_supply_event(
    session: AsyncSession, *, account_id: str, meter_id: str, action: str, reason: str
) -> None:
    """Record a trip or close decided for a meter."""
    await session.execute(
        insert(supply_events).values(
            account_id=account_id,
            meter_id=meter_id,
            action=action,
            reason=reason[:400],
            at=utcnow(),
        )
    )


async def supply_event_window(
    session: AsyncSession,
    *,
    meter_id: str | None,
    account_id: str | None,
    limit: int,
    offset: int,
) -> Window[SupplyEvent]:
    """Return supply changes, newest first, optionally of one meter or one account."""
    query = select(supply_events).order_by(supply_events.c.id.desc())
    if meter_id is not None:
        query = query.where(supply_events.c.meter_id == meter_id)
    if account_id is not None:
        query = query.where(supply_events.c.account_id == account_id)
    rows = (await session.execute(query.limit(limit).offset(offset))).all()
    return Window[SupplyEvent](
        items=[SupplyEvent.model_validate(r._mapping) for r in rows], limit=limit, offset=offset
    )
