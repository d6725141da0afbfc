"""The energy report of an account group: each account's usage report, its meters, and
the group's figures per period and in total, in three queries whatever the group's size."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import Decimal
from typing import Literal

from prepaid_common.contracts.api.usage import (
    GroupUsageAccount,
    GroupUsageMeter,
    GroupUsagePeriod,
    GroupUsageReport,
)
from prepaid_common.errors import NotFound
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.tables import account_groups, accounts, daily_usage, meters

ZERO_KWH = Decimal("0.000")
ZERO_MONEY = Decimal("0.00")


class _Sum:
    """Figures being added up (exactly: Decimal)."""

    def __init__(self) -> None:
        self.metered = ZERO_KWH
        self.billed = ZERO_KWH
        self.cost = ZERO_MONEY

    def add(self, metered: Decimal, billed: Decimal, cost: Decimal) -> None:
        self.metered += metered
        self.billed += billed
        self.cost += cost

    def figures(self) -> dict[str, Decimal]:
        return {
            "metered_kwh": self.metered,
            "billed_kwh": self.billed,
            "difference_kwh": self.metered - self.billed,
            "cost": self.cost,
        }


async def group_usage_report(
    session: AsyncSession,
    *,
    group: str,
    start: date | None,
    end: date | None,
    granularity: Literal["day", "month"],
) -> GroupUsageReport:
    """Return the usage of every account that carries ``group``, by local day or month,
    from the daily roll-up: the same rows each account's own usage report answers."""
    members = (
        await session.execute(
            select(accounts.c.id, accounts.c.name)
            .join(account_groups, account_groups.c.account_id == accounts.c.id)
            .where(account_groups.c.group_name == group)
            .order_by(accounts.c.id)
        )
    ).all()
    if not members:
        raise NotFound(f"no account is in group {group!r}")
    in_group = select(account_groups.c.account_id).where(account_groups.c.group_name == group)
    period = daily_usage.c.day if granularity == "day" else func.substr(daily_usage.c.day, 1, 7)
    query = (
        select(
            daily_usage.c.account_id,
            daily_usage.c.meter_id,
            period.label("period"),
            func.sum(daily_usage.c.metered_kwh).label("metered_kwh"),
            func.sum(daily_usage.c.billed_kwh).label("billed_kwh"),
            func.sum(daily_usage.c.cost).label("cost"),
        )
        .where(daily_usage.c.account_id.in_(in_group))
        .group_by(daily_usage.c.account_id, daily_usage.c.meter_id, period)
    )
    if start is not None:
        query = query.where(daily_usage.c.day >= start.isoformat())
    if end is not None:
        query = query.where(daily_usage.c.day <= end.isoformat())
    by_period: dict[str, dict[str, _Sum]] = defaultdict(lambda: defaultdict(_Sum))
    by_meter: dict[str, dict[str, _Sum]] = defaultdict(lambda: defaultdict(_Sum))
    for row in (await session.execute(query)).all():
        by_period[row.account_id][row.period].add(row.metered_kwh, row.billed_kwh, row.cost)
        by_meter[row.account_id][row.meter_id].add(row.metered_kwh, row.billed_kwh, row.cost)
    # Meters bound now but without usage in the span are listed too, with nothing used.
    bound = await session.execute(
        select(meters.c.account_id, meters.c.meter_id).where(meters.c.account_id.in_(in_group))
    )
    for account_id, meter_id in bound.all():
        by_meter[account_id][meter_id].add(ZERO_KWH, ZERO_KWH, ZERO_MONEY)
    group_periods: dict[str, _Sum] = defaultdict(_Sum)
    group_total = _Sum()
    rows: list[GroupUsageAccount] = []
    for account_id, name in members:
        account_total = _Sum()
        periods = []
        for label, figures in sorted(by_period[account_id].items()):
            periods.append(GroupUsagePeriod(period=label, **figures.figures()))
            account_total.add(figures.metered, figures.billed, figures.cost)
            group_periods[label].add(figures.metered, figures.billed, figures.cost)
        group_total.add(account_total.metered, account_total.billed, account_total.cost)
        rows.append(
            GroupUsageAccount(
                account_id=account_id,
                name=name,
                meters=[
                    GroupUsageMeter(meter_id=meter_id, **figures.figures())
                    for meter_id, figures in sorted(by_meter[account_id].items())
                ],
                items=periods,
                **account_total.figures(),
            )
        )
    return GroupUsageReport(
        group=group,
        granularity=granularity,
        start=start and start.isoformat(),
        end=end and end.isoformat(),
        accounts=rows,
        items=[
            GroupUsagePeriod(period=label, **figures.figures())
            for label, figures in sorted(group_periods.items())
        ],
        **group_total.figures(),
    )
