"""Data for people: statements, usage and the dunning list."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from prepaid_common.contracts.api.billing import DunningItem, Items, Statement, UsageReport
from prepaid_common.contracts.dates import IsoDate

from gateway.api.deps import (
    Billing,
    Collector,
    CurrentUser,
    Month,
    PathId,
    StaffUser,
    ensure_visible,
)
from gateway.public_meters import visible_meter
from gateway.upstream import Upstream

router = APIRouter(tags=["reports"])

From = Annotated[IsoDate | None, Query(alias="from", description="First day (YYYY-MM-DD)")]
To = Annotated[IsoDate | None, Query(alias="to", description="Last day (YYYY-MM-DD)")]
Granularity = Literal["day", "month"]


@router.get("/accounts/{account_id}/statements/{month}")
async def statement(
    principal: CurrentUser, billing: Billing, account_id: PathId, month: Month
) -> Statement:
    """Monthly statement (YYYY-MM): opening, movements, closing, arrears, amount due."""
    ensure_visible(principal, account_id)
    return Statement.model_validate(
        await billing.get(f"/internal/accounts/{account_id}/statements/{month}")
    )


@router.get("/accounts/{account_id}/usage")
async def account_usage(
    principal: CurrentUser,
    billing: Billing,
    account_id: PathId,
    start: From = None,
    end: To = None,
    granularity: Granularity = "day",
) -> UsageReport:
    """Energy and cost per day or month for the account's meters."""
    ensure_visible(principal, account_id)
    return await _usage(billing, start, end, granularity, account_id=account_id)


@router.get("/meters/{meter_id}/usage")
async def meter_usage(
    principal: CurrentUser,
    collector: Collector,
    billing: Billing,
    meter_id: PathId,
    start: From = None,
    end: To = None,
    granularity: Granularity = "day",
) -> UsageReport:
    """Energy and cost per day or month for one meter (energy analysis)."""
    await visible_meter(
        principal=principal, collector=collector, billing=billing, meter_id=meter_id
    )
    return await _usage(billing, start, end, granularity, meter_id=meter_id)


async def _usage(
    billing: Upstream, start: date | None, end: date | None, granularity: str, **subject: str
) -> UsageReport:
    # ``subject`` is the one of account_id or meter_id the report is for.
    period = {"from": start and start.isoformat(), "to": end and end.isoformat()}
    return UsageReport.model_validate(
        await billing.get("/internal/usage", **subject, granularity=granularity, **period)
    )


@router.get("/dunning")
async def dunning(principal: StaffUser, billing: Billing) -> Items[DunningItem]:
    """Accounts that owe money (催缴单)."""
    return Items[DunningItem].model_validate(await billing.get("/internal/dunning"))
