"""Report routes for people: usage, statements, dunning, anomalies."""

from __future__ import annotations

from datetime import date
from typing import Literal

from fastapi import APIRouter, Query
from prepaid_common.contracts.api.billing import (
    Anomaly,
    DunningItem,
    Items,
    Statement,
    UsageReport,
    Window,
)
from prepaid_common.contracts.api.usage import GroupUsageReport
from prepaid_common.errors import Invalid

from billing.store.group_usage import group_usage_report
from billing.store.queries import BillingQueries


def router(queries: BillingQueries) -> APIRouter:
    """Return the report routes."""
    routes = APIRouter(prefix="/internal")

    @routes.get("/usage")
    async def usage(
        meter_id: str | None = None,
        account_id: str | None = None,
        start: date | None = Query(None, alias="from"),
        end: date | None = Query(None, alias="to"),
        granularity: Literal["day", "month"] = "day",
        current_binding: bool = False,
    ) -> UsageReport:
        # ``current_binding``: only the meter's usage by the account it is bound to now, from
        # the day it was bound (what its tenant may see; not the previous tenant's).
        if (meter_id is None) == (account_id is None):
            raise Invalid("give exactly one of meter_id or account_id")
        return await queries.usage(
            meter_id=meter_id,
            account_id=account_id,
            start=start,
            end=end,
            granularity=granularity,
            current_binding=current_binding,
        )

    @routes.get("/group-usage")
    async def group_usage(
        group: str = Query(min_length=1, max_length=100),
        start: date | None = Query(None, alias="from"),
        end: date | None = Query(None, alias="to"),
        granularity: Literal["day", "month"] = "day",
    ) -> GroupUsageReport:
        """The usage of every account in a group, as each account's report has it, with
        the group's per period and in total (the group is a query parameter: its name is
        free text, which a query string carries whatever it holds)."""
        if start is not None and end is not None and end < start:
            raise Invalid("'to' is before 'from'")
        async with queries.sessions() as session:
            return await group_usage_report(
                session, group=group, start=start, end=end, granularity=granularity
            )

    @routes.get("/accounts/{account_id}/statements/{month}")
    async def statement(account_id: str, month: str) -> Statement:
        """Monthly statement: opening, movements by kind, closing, arrears, amount due."""
        try:
            first = date.fromisoformat(f"{month}-01")
        except ValueError as error:
            raise Invalid("month must be YYYY-MM") from error
        return await queries.statement(account_id, month=month, first=first)

    @routes.get("/dunning")
    async def dunning() -> Items[DunningItem]:
        """Accounts that owe money (催缴单): a negative balance or unpaid arrears."""
        return await queries.dunning()

    @routes.get("/anomalies")
    async def list_anomalies(
        meter_id: str | None = None,
        kind: str | None = None,
        limit: int = Query(50, ge=1, le=500),
        offset: int = Query(0, ge=0),
    ) -> Window[Anomaly]:
        return await queries.anomalies(meter_id=meter_id, kind=kind, limit=limit, offset=offset)

    return routes
