"""Meter bindings, their history, their supply state and local-prepaid credit views."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from prepaid_common.contracts.api.billing import (
    Items,
    LocalCreditState,
    LocalCreditView,
    LocalPurchase,
    MeterBinding,
    MeterBound,
    MeterHistoryEvent,
)
from prepaid_common.errors import NotFound
from sqlalchemy import Text, cast, delete, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from billing import bulk
from billing.domain.supply import Supply
from billing.tables import accounts, local_meters, meter_history, meters, purchases


async def meter_row(session: AsyncSession, meter_id: str) -> Row[Any] | None:
    """Return a bound meter's row, or None."""
    return (await session.execute(select(meters).where(meters.c.meter_id == meter_id))).first()


async def bound_account(session: AsyncSession, meter_id: str) -> str | None:
    """Return the account a meter is bound to, or None."""
    owner: str | None = await session.scalar(
        select(meters.c.account_id).where(meters.c.meter_id == meter_id)
    )
    return owner


async def insert_binding(
    session: AsyncSession,
    *,
    meter_id: str,
    account_id: str,
    tariff_id: str | None,
    multiplier: Decimal,
    position: Any,
    supply: str,
    now: datetime,
) -> None:
    """Bind a meter to an account."""
    await session.execute(
        insert(meters).values(
            meter_id=meter_id,
            account_id=account_id,
            tariff_id=tariff_id,
            multiplier=multiplier,
            position=position,
            supply=supply,
            bound_at=now,
        )
    )


async def delete_binding(session: AsyncSession, meter_id: str) -> None:
    """Unbind a meter."""
    await session.execute(delete(meters).where(meters.c.meter_id == meter_id))


async def add_history(
    session: AsyncSession,
    *,
    meter_id: str,
    account_id: str,
    event: str,
    final_kwh: Decimal | None,
    detail: str,
    operator: str,
    at: datetime,
) -> None:
    """Record an event in a meter's history (bound, swapped out, swapped in)."""
    await session.execute(
        insert(meter_history).values(
            meter_id=meter_id,
            account_id=account_id,
            event=event,
            final_kwh=final_kwh,
            detail=detail,
            operator=operator,
            at=at,
        )
    )


async def supplies_of(session: AsyncSession, account_id: str) -> list[tuple[str, Supply]]:
    """Return (meter id, supply) of each meter of an account."""
    rows = await session.execute(
        select(meters.c.meter_id, meters.c.supply).where(meters.c.account_id == account_id)
    )
    return [(meter_id, "off" if supply == "off" else "on") for meter_id, supply in rows.all()]


async def set_supply(session: AsyncSession, meter_id: str, supply: str) -> None:
    """Record a meter's decided supply."""
    await session.execute(update(meters).where(meters.c.meter_id == meter_id).values(supply=supply))


async def bindings_for_rating(session: AsyncSession, meter_ids: list[str]) -> dict[str, Any]:
    """Every meter of the accounts the given meters belong to, with its account's terms,
    locked for this transaction."""
    touched = select(meters.c.account_id).where(bulk.one_of(session, meters.c.meter_id, meter_ids))
    rows = (
        await session.execute(
            select(
                meters.c.meter_id,
                meters.c.account_id,
                meters.c.tariff_id,
                meters.c.multiplier,
                # As stored: the position cache compares texts before parsing.
                cast(meters.c.position, Text).label("position"),
                meters.c.supply,
                accounts.c.tariff_id.label("account_tariff"),
                accounts.c.mode,
                accounts.c.trip_line,
                accounts.c.overdraft_limit,
                accounts.c.warning_line,
                accounts.c.warned,
            )
            .join(accounts, accounts.c.id == meters.c.account_id)
            .where(meters.c.account_id.in_(touched))
            .order_by(meters.c.meter_id)
            # Replicas rating the same meter wait for each other instead of both moving
            # its position from the same start.
            .with_for_update(of=meters)
        )
    ).all()
    return {row.meter_id: row for row in rows}


async def meter_bound(session: AsyncSession, *, meter_id: str, account_id: str) -> MeterBound:
    """Return a binding as the bind route answers it."""
    local = (
        await session.execute(
            select(local_meters.c.price).where(local_meters.c.meter_id == meter_id)
        )
    ).first()
    return MeterBound(
        meter_id=meter_id,
        account_id=account_id,
        local_prepaid=local is not None,
        local_price=None if local is None else local.price,
    )


async def binding_list(
    session: AsyncSession, *, meter_ids: Sequence[str] | None, account_ids: Sequence[str] | None
) -> Items[MeterBinding]:
    """Return bindings by meter id, optionally only of given meters or accounts."""
    query = (
        select(
            meters.c.meter_id,
            meters.c.account_id,
            meters.c.supply,
            meters.c.multiplier,
            local_meters.c.meter_id.is_not(None).label("local_prepaid"),
            local_meters.c.price.label("local_price"),
        )
        .outerjoin(local_meters, local_meters.c.meter_id == meters.c.meter_id)
        .order_by(meters.c.meter_id)
    )
    if meter_ids is not None:
        query = query.where(meters.c.meter_id.in_(meter_ids))
    if account_ids is not None:
        query = query.where(meters.c.account_id.in_(account_ids))
    rows = (await session.execute(query)).all()
    return Items[MeterBinding](items=[MeterBinding.model_validate(r._mapping) for r in rows])


async def history_of(session: AsyncSession, meter_id: str) -> Items[MeterHistoryEvent]:
    """Return a meter's history, oldest first."""
    rows = (
        await session.execute(
            select(meter_history)
            .where(meter_history.c.meter_id == meter_id)
            .order_by(meter_history.c.id)
        )
    ).all()
    return Items[MeterHistoryEvent](
        items=[MeterHistoryEvent.model_validate(r._mapping) for r in rows]
    )


async def local_credit_view(session: AsyncSession, meter_id: str, *, limit: int) -> LocalCreditView:
    """A local-prepaid meter's baseline, latest read-back and purchases (newest first)."""
    row = (
        await session.execute(select(local_meters).where(local_meters.c.meter_id == meter_id))
    ).first()
    if row is None:
        raise NotFound(f"meter {meter_id} is not local-prepaid")
    items = (
        await session.execute(
            select(purchases)
            .where(purchases.c.meter_id == meter_id)
            .order_by(purchases.c.created_at.desc(), purchases.c.id)
            .limit(limit)
        )
    ).all()
    baseline = None
    if row.baseline_count is not None:
        baseline = LocalCreditState(
            purchase_count=row.baseline_count,
            credit=row.baseline_credit,
            energy_kwh=row.baseline_kwh,
            read_at=row.baseline_at,
        )
    shown = None
    if row.meter_count is not None:
        shown = LocalCreditState(
            purchase_count=row.meter_count,
            credit=row.meter_credit,
            energy_kwh=row.meter_kwh,
            read_at=row.read_at,
        )
    return LocalCreditView(
        meter_id=meter_id,
        local_price=row.price,
        baseline=baseline,
        meter=shown,
        purchase_count_mismatch=row.count_alarm,
        local_credit_mismatch=row.credit_alarm,
        purchases=[LocalPurchase.model_validate(item._mapping) for item in items],
    )
