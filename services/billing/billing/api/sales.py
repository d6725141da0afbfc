"""The sales report route (called by the gateway)."""

from __future__ import annotations

from datetime import date
from typing import Literal

from fastapi import APIRouter, Query
from prepaid_common.contracts.api.sales import SalesReport
from prepaid_common.errors import Invalid

from billing.store.queries import BillingQueries
from billing.store.sales import sales_report


def router(queries: BillingQueries) -> APIRouter:
    """Return the sales report route."""
    routes = APIRouter(prefix="/internal")

    @routes.get("/sales")
    async def sales(
        start: date = Query(alias="from"),
        end: date = Query(alias="to"),
        granularity: Literal["day", "month"] = "day",
    ) -> SalesReport:
        if end < start:
            raise Invalid("'to' is before 'from'")
        if (end - start).days > 366:
            raise Invalid("a sales report spans at most 366 days")
        async with queries.sessions() as session:
            return await sales_report(session, start=start, end=end, granularity=granularity)

    return routes
