"""The site office's tables: tenant profiles and search, closures, readings history,
cashier shifts, postpaid terms and apportionment rules and runs."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from prepaid_common.contracts.api.site_office import (
    AccountClosed,
    ApportionmentRule,
    ApportionmentRun,
    PostpaidBill,
    PostpaidTerms,
    ReadingPage,
    ReadingRow,
    ShiftView,
    TenantPage,
    TenantProfile,
    TenantRow,
)
from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from billing.domain import postpaid
from billing.domain.ledger import clearing_ledger, tenant_ledger
from billing.domain.money import ZERO
from billing.store.accounts import account_views
from billing.store.balances import balance_of
from billing.store.reference import load_policy
from billing.tables import (
    account_closures,
    account_profiles,
    accounts,
    apportionment_rules,
    apportionment_runs,
    cashier_shifts,
    daily_usage,
    entries,
    meters,
    postpaid_terms,
    readings,
    transactions,
)

_PROFILE_FIELDS = ("tenant_name", "phone", "email", "building", "floor", "room", "area_m2")


# --- profiles and search -----------------------------------------------------------------
async def profile_of(session: AsyncSession, account_id: str) -> TenantProfile:
    row = (
        await session.execute(
            select(account_profiles).where(account_profiles.c.account_id == account_id)
        )
    ).first()
    if row is None:
        return TenantProfile()
    return TenantProfile(**{name: getattr(row, name) for name in _PROFILE_FIELDS})


async def save_profile(session: AsyncSession, account_id: str, profile: TenantProfile) -> None:
    """Write a tenant's profile whole (a field left out is cleared)."""
    values = {name: getattr(profile, name) for name in _PROFILE_FIELDS}
    changed = await session.execute(
        update(account_profiles).where(account_profiles.c.account_id == account_id).values(**values)
    )
    if not changed.rowcount:  # type: ignore[attr-defined]
        await session.execute(insert(account_profiles).values(account_id=account_id, **values))


async def tenant_page(
    session: AsyncSession,
    *,
    text: str | None,
    building: str | None,
    floor: str | None,
    room: str | None,
    include_closed: bool,
    limit: int,
    offset: int,
) -> TenantPage:
    """Accounts found by place (exact) and by a text in the id, names or phone."""
    query = select(accounts).outerjoin(
        account_profiles, account_profiles.c.account_id == accounts.c.id
    )
    for column, value in (
        (account_profiles.c.building, building),
        (account_profiles.c.floor, floor),
        (account_profiles.c.room, room),
    ):
        if value is not None:
            query = query.where(column == value)
    if text:
        # LIKE's own wildcards in the text are taken literally.
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(
            or_(
                *(
                    func.lower(column).like(pattern.lower(), escape="\\")
                    for column in (
                        accounts.c.id,
                        accounts.c.name,
                        account_profiles.c.tenant_name,
                        account_profiles.c.phone,
                        account_profiles.c.room,
                    )
                )
            )
        )
    if not include_closed:
        query = query.where(
            accounts.c.id.not_in(select(account_closures.c.account_id).scalar_subquery())
        )
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = (await session.execute(query.order_by(accounts.c.id).limit(limit).offset(offset))).all()
    views = await account_views(session, rows)
    ids = [view.id for view in views]
    profiles = {
        row.account_id: TenantProfile(**{name: getattr(row, name) for name in _PROFILE_FIELDS})
        for row in (
            await session.execute(
                select(account_profiles).where(account_profiles.c.account_id.in_(ids))
            )
        ).all()
    }
    closed = dict(
        (
            await session.execute(
                select(account_closures.c.account_id, account_closures.c.closed_at).where(
                    account_closures.c.account_id.in_(ids)
                )
            )
        ).all()
    )
    return TenantPage(
        items=[
            TenantRow(
                account_id=view.id,
                name=view.name,
                mode=view.mode,
                balance=view.balance,
                supply=view.supply,
                meter_ids=view.meter_ids,
                profile=profiles.get(view.id, TenantProfile()),
                closed_at=closed.get(view.id),
            )
            for view in views
        ],
        total=total or 0,
        limit=limit,
        offset=offset,
    )


# --- readings history (抄表记录) -----------------------------------------------------------
async def reading_page(
    session: AsyncSession,
    meter_id: str,
    *,
    since: datetime | None,
    before: datetime | None,
    limit: int,
) -> ReadingPage:
    """A meter's readings, newest first, older than ``before`` and not older than ``since``."""
    query = select(readings).where(readings.c.meter_id == meter_id)
    if since is not None:
        query = query.where(readings.c.read_at >= since)
    if before is not None:
        query = query.where(readings.c.read_at < before)
    rows = (await session.execute(query.order_by(readings.c.read_at.desc()).limit(limit + 1))).all()
    items = [
        ReadingRow(
            meter_id=row.meter_id,
            read_at=row.read_at,
            energy_kwh=row.energy_kwh,
            received_at=row.received_at,
        )
        for row in rows[:limit]
    ]
    more = len(rows) > limit
    return ReadingPage(items=items, limit=limit, next_before=items[-1].read_at if more else None)


async def bound_since(session: AsyncSession, meter_id: str) -> tuple[str, datetime] | None:
    """(account, bound at) of a meter's current binding, or None."""
    row = (
        await session.execute(
            select(meters.c.account_id, meters.c.bound_at).where(meters.c.meter_id == meter_id)
        )
    ).first()
    return None if row is None else (row.account_id, row.bound_at)


async def save_position(session: AsyncSession, meter_id: str, position: Any) -> None:
    """Store a meter's rating position (moved by a final reading)."""
    await session.execute(
        update(meters).where(meters.c.meter_id == meter_id).values(position=position)
    )


# --- closures ----------------------------------------------------------------------------
async def closure(session: AsyncSession, account_id: str) -> Any:
    return (
        await session.execute(
            select(account_closures).where(account_closures.c.account_id == account_id)
        )
    ).first()


async def closure_by_key(session: AsyncSession, key: str) -> Any:
    return (
        await session.execute(select(account_closures).where(account_closures.c.key == key))
    ).first()


async def insert_closure(session: AsyncSession, *, key: str, result: AccountClosed) -> None:
    await session.execute(
        insert(account_closures).values(
            account_id=result.account_id,
            key=key,
            kind=result.kind,
            successor=result.successor,
            result=result.model_dump(mode="json"),
            operator=result.operator,
            closed_at=result.closed_at,
        )
    )


async def closed_ids(session: AsyncSession) -> set[str]:
    """Every closed account: the calendar posts nothing more to them."""
    return set((await session.scalars(select(account_closures.c.account_id))).all())


async def is_closed(session: AsyncSession, account_id: str) -> bool:
    found = await session.scalar(
        select(account_closures.c.account_id).where(account_closures.c.account_id == account_id)
    )
    return found is not None


# --- cashier shifts ------------------------------------------------------------------------
async def last_close(session: AsyncSession, cashier: str) -> datetime | None:
    closed: datetime | None = await session.scalar(
        select(func.max(cashier_shifts.c.closed_at)).where(cashier_shifts.c.cashier == cashier)
    )
    return closed


async def cash_since(
    session: AsyncSession, cashier: str, *, since: datetime | None, until: datetime
) -> tuple[int, Decimal, int, Decimal]:
    """(top-ups, cash in, refunds, cash out) the ledger holds for a cashier's drawer.

    The drawer is ``clearing:cash``: a counter top-up takes cash in (the clearing entry is
    negative), a cash refund pays it out (positive); only the cashier's own transactions.
    """
    drawer = clearing_ledger("cash")
    query = (
        select(transactions.c.kind, func.count(), func.sum(entries.c.amount))
        .join(entries, entries.c.transaction_id == transactions.c.id)
        .where(
            transactions.c.operator == cashier,
            entries.c.ledger_account == drawer,
            transactions.c.kind.in_(("top_up", "refund")),
            transactions.c.created_at <= until,
        )
        .group_by(transactions.c.kind)
    )
    if since is not None:
        query = query.where(transactions.c.created_at > since)
    top_ups, cash_in, refunds, cash_out = 0, ZERO, 0, ZERO
    for kind, count, amount in (await session.execute(query)).all():
        if kind == "top_up":
            top_ups, cash_in = count, -amount
        else:
            refunds, cash_out = count, amount
    return top_ups, cash_in, refunds, cash_out


async def insert_shift(session: AsyncSession, shift: ShiftView) -> str:
    shift_id = str(uuid.uuid4())
    assert shift.closed_at is not None
    assert shift.counted_cash is not None
    await session.execute(
        insert(cashier_shifts).values(
            id=shift_id,
            cashier=shift.cashier,
            opened_at=shift.opened_at,
            closed_at=shift.closed_at,
            top_ups=shift.top_ups,
            cash_in=shift.cash_in,
            refunds=shift.refunds,
            cash_out=shift.cash_out,
            counted_cash=shift.counted_cash,
            note=shift.note,
        )
    )
    return shift_id


async def shifts(session: AsyncSession, cashier: str | None, *, limit: int) -> list[ShiftView]:
    query = select(cashier_shifts).order_by(cashier_shifts.c.closed_at.desc()).limit(limit)
    if cashier is not None:
        query = query.where(cashier_shifts.c.cashier == cashier)
    return [
        ShiftView(
            id=row.id,
            cashier=row.cashier,
            opened_at=row.opened_at,
            closed_at=row.closed_at,
            top_ups=row.top_ups,
            cash_in=row.cash_in,
            refunds=row.refunds,
            cash_out=row.cash_out,
            expected_cash=row.cash_in - row.cash_out,
            counted_cash=row.counted_cash,
            difference=row.counted_cash - (row.cash_in - row.cash_out),
            note=row.note,
        )
        for row in (await session.execute(query)).all()
    ]


# --- postpaid terms --------------------------------------------------------------------------
async def terms_of(session: AsyncSession, account_id: str) -> PostpaidTerms | None:
    row = (
        await session.execute(
            select(postpaid_terms).where(postpaid_terms.c.account_id == account_id)
        )
    ).first()
    if row is None:
        return None
    return PostpaidTerms(
        due_day=row.due_day,
        grace_days=row.grace_days,
        late_fee_rate=row.late_fee_rate,
        cut_when_overdue=row.cut_when_overdue,
    )


async def save_terms(session: AsyncSession, account_id: str, terms: PostpaidTerms) -> None:
    values = terms.model_dump()
    changed = await session.execute(
        update(postpaid_terms).where(postpaid_terms.c.account_id == account_id).values(**values)
    )
    if not changed.rowcount:  # type: ignore[attr-defined]
        await session.execute(insert(postpaid_terms).values(account_id=account_id, **values))


async def tenant_sums_since(
    session: AsyncSession, account_id: str, since: datetime
) -> tuple[Decimal, Decimal]:
    """(everything posted on the tenant's balance since, the credits among it)."""
    rows = (
        await session.execute(
            select(entries.c.amount)
            .join(transactions, transactions.c.id == entries.c.transaction_id)
            .where(
                entries.c.ledger_account == tenant_ledger(account_id),
                transactions.c.created_at >= since,
            )
        )
    ).scalars()
    moved, credits = ZERO, ZERO
    for amount in rows:
        moved += amount
        if amount > 0:
            credits += amount
    return moved, credits


async def postpaid_standing(
    session: AsyncSession, account_id: str, terms: PostpaidTerms, now: datetime
) -> PostpaidBill:
    """The last closed month's bill, what is unpaid of it, and whether it is overdue."""
    zone = (await load_policy(session)).zone
    period = postpaid.last_closed(now, zone, terms)
    balance = await balance_of(session, account_id)
    moved, credits = await tenant_sums_since(session, account_id, period.closed_at)
    billed, owed = postpaid.unpaid(balance_at_close=balance - moved, credits_since=credits)
    fees = await late_fees_since(session, account_id, period.closed_at)
    return PostpaidBill(
        account_id=account_id,
        month=period.month,
        billed=billed,
        unpaid=owed,
        due_on=period.due_on,
        overdue=postpaid.overdue(
            owed=owed, due_on=period.due_on, today=now.astimezone(zone).date(), terms=terms
        ),
        late_fees=fees,
        terms=terms,
    )


async def late_fees_since(session: AsyncSession, account_id: str, since: datetime) -> Decimal:
    """Late fees posted on the account since an instant."""
    total: Decimal | None = await session.scalar(
        select(func.sum(entries.c.amount))
        .join(transactions, transactions.c.id == entries.c.transaction_id)
        .where(
            transactions.c.account_id == account_id,
            transactions.c.kind == "late_fee",
            entries.c.ledger_account == tenant_ledger(account_id),
            transactions.c.created_at >= since,
        )
    )
    return ZERO if total is None else -total


# --- apportionment ---------------------------------------------------------------------------
async def rule(session: AsyncSession, rule_id: str) -> ApportionmentRule | None:
    row = (
        await session.execute(
            select(apportionment_rules).where(apportionment_rules.c.id == rule_id)
        )
    ).first()
    return None if row is None else ApportionmentRule(**row._mapping)


async def rules(session: AsyncSession) -> list[ApportionmentRule]:
    rows = (
        await session.execute(select(apportionment_rules).order_by(apportionment_rules.c.id))
    ).all()
    return [ApportionmentRule(**row._mapping) for row in rows]


async def save_rule(session: AsyncSession, saved: ApportionmentRule) -> None:
    values = saved.model_dump()
    changed = await session.execute(
        update(apportionment_rules)
        .where(apportionment_rules.c.id == saved.id)
        .values(**{k: v for k, v in values.items() if k not in ("id", "created_at")})
    )
    if not changed.rowcount:  # type: ignore[attr-defined]
        await session.execute(insert(apportionment_rules).values(**values))


async def run_of(session: AsyncSession, rule_id: str, month: str) -> ApportionmentRun | None:
    result = await session.scalar(
        select(apportionment_runs.c.result).where(
            and_(apportionment_runs.c.rule_id == rule_id, apportionment_runs.c.month == month)
        )
    )
    return None if result is None else ApportionmentRun.model_validate(result)


async def insert_run(session: AsyncSession, run: ApportionmentRun) -> None:
    await session.execute(
        insert(apportionment_runs).values(
            rule_id=run.rule_id,
            month=run.month,
            result=run.model_dump(mode="json"),
            posted_at=run.posted_at,
        )
    )


async def month_cost(session: AsyncSession, account_id: str, month: str) -> Decimal:
    """An account's energy cost over a local month (from the daily roll-up)."""
    total: Decimal | None = await session.scalar(
        select(func.sum(daily_usage.c.cost)).where(
            daily_usage.c.account_id == account_id, daily_usage.c.day.like(f"{month}-%")
        )
    )
    return total if total is not None else ZERO


async def month_energy(
    session: AsyncSession, account_ids: Sequence[str], month: str
) -> dict[str, Decimal]:
    """Each account's metered kWh over a local month (from the daily roll-up)."""
    rows = (
        await session.execute(
            select(daily_usage.c.account_id, func.sum(daily_usage.c.metered_kwh))
            .where(
                daily_usage.c.account_id.in_(list(account_ids)),
                daily_usage.c.day.like(f"{month}-%"),
            )
            .group_by(daily_usage.c.account_id)
        )
    ).all()
    found = {account_id: kwh for account_id, kwh in rows}
    return {account_id: found.get(account_id, Decimal(0)) for account_id in account_ids}


async def areas(session: AsyncSession, account_ids: Sequence[str]) -> dict[str, Decimal]:
    rows = (
        await session.execute(
            select(account_profiles.c.account_id, account_profiles.c.area_m2).where(
                account_profiles.c.account_id.in_(list(account_ids))
            )
        )
    ).all()
    found = {account_id: area for account_id, area in rows if area is not None}
    return {account_id: found.get(account_id, Decimal(0)) for account_id in account_ids}
