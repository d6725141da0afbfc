"""Reports for people: usage by day or month, monthly statements, the dunning list."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Literal

from prepaid_common.contracts.api.billing import (
    DunningItem,
    Items,
    Statement,
    UsagePeriod,
    UsageReport,
)
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.domain import ledger
from billing.domain.accounts import amount_due
from billing.domain.money import ZERO
from billing.store.accounts import require_account
from billing.store.balances import account_balances
from billing.store.ledger import ledger_sum, movements
from billing.store.reference import load_policy
from billing.tables import accounts, daily_usage


async def usage_report(
    session: AsyncSession,
    *,
    meter_id: str | None,
    account_id: str | None,
    start: date | None,
    end: date | None,
    granularity: Literal["day", "month"],
) -> UsageReport:
    """Return energy and cost by local day or month, of one meter or one account (or of
    one meter while bound to one account, given both)."""
    period = daily_usage.c.day if granularity == "day" else func.substr(daily_usage.c.day, 1, 7)
    query = select(
        period.label("period"),
        func.sum(daily_usage.c.metered_kwh).label("metered_kwh"),
        func.sum(daily_usage.c.billed_kwh).label("billed_kwh"),
        func.sum(daily_usage.c.cost).label("cost"),
    ).group_by(period)
    if meter_id is not None:
        query = query.where(daily_usage.c.meter_id == meter_id)
    if account_id is not None:
        query = query.where(daily_usage.c.account_id == account_id)
    if start is not None:
        query = query.where(daily_usage.c.day >= start.isoformat())
    if end is not None:
        query = query.where(daily_usage.c.day <= end.isoformat())
    rows = (await session.execute(query.order_by(period))).all()
    return UsageReport(
        items=[UsagePeriod.model_validate(r._mapping) for r in rows], granularity=granularity
    )


async def statement(
    session: AsyncSession, account_id: str, *, month: str, first: date
) -> Statement:
    """Return an account's statement for ``month``, which starts on ``first`` (local time)."""
    following = date(first.year + (first.month == 12), first.month % 12 + 1, 1)
    account = await require_account(session, account_id)
    zone = (await load_policy(session)).zone
    start = datetime.combine(first, time(0), zone)
    end = datetime.combine(following, time(0), zone)
    tenant = ledger.tenant_ledger(account_id)
    closing = await ledger_sum(session, tenant, before=end)
    arrears = await ledger_sum(session, ledger.arrears_ledger(account_id), before=end)
    energy = await session.scalar(
        select(func.sum(daily_usage.c.metered_kwh)).where(
            daily_usage.c.account_id == account_id,
            daily_usage.c.day >= first.isoformat(),
            daily_usage.c.day < following.isoformat(),
        )
    )
    return Statement(
        account_id=account_id,
        name=account.name,
        mode=account.mode,
        month=month,
        opening_balance=await ledger_sum(session, tenant, before=start),
        movements=await movements(session, tenant, start=start, end=end),
        closing_balance=closing,
        arrears=arrears,
        energy_kwh=energy or ZERO,
        amount_due=amount_due(balance=closing, arrears=arrears),
    )


async def dunning_list(session: AsyncSession) -> Items[DunningItem]:
    """Return the accounts that owe money, by id: two queries whatever their number."""
    rows = (
        await session.execute(
            select(accounts.c.id, accounts.c.name, accounts.c.mode).order_by(accounts.c.id)
        )
    ).all()
    money = await account_balances(session, [row.id for row in rows])
    items = []
    for row in rows:
        balance, arrears = money[row.id]
        due = amount_due(balance=balance, arrears=arrears)
        if due > 0:
            items.append(
                DunningItem(
                    account_id=row.id,
                    name=row.name,
                    mode=row.mode,
                    balance=balance,
                    arrears=arrears,
                    amount_due=due,
                )
            )
    return Items[DunningItem](items=items)
