"""The energy report of an account group (用电报表 by group): each account of the group and
its meters, metered against billed, per period and in total."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel


class UsageFigures(BaseModel):
    """Energy and cost over some stretch, the meter's count beside the system's."""

    metered_kwh: Decimal
    billed_kwh: Decimal
    # metered - billed: the meter's own count against what the system billed (a CT/PT
    # multiplier or a tariff's line loss makes billed differ from metered).
    difference_kwh: Decimal
    cost: Decimal


class GroupUsagePeriod(UsageFigures):
    # A local day (YYYY-MM-DD) or month (YYYY-MM).
    period: str


class GroupUsageMeter(UsageFigures):
    """One meter's usage by the account over the span (a meter swapped out is here too)."""

    meter_id: str


class GroupUsageAccount(UsageFigures):
    """One account of the group: its figures per period are its own usage report's."""

    account_id: str
    name: str
    meters: list[GroupUsageMeter]
    items: list[GroupUsagePeriod]


class GroupUsageReport(UsageFigures):
    """The group's accounts (those that carry the group now), its figures per period, and
    its totals (the sums of its accounts')."""

    group: str
    granularity: Literal["day", "month"]
    start: str | None
    end: str | None
    accounts: list[GroupUsageAccount]
    items: list[GroupUsagePeriod]
