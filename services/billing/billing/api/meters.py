"""Meter routes: bindings, swaps, history, local-prepaid credit."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response
from prepaid_common.contracts.api.billing import (
    BindMeter,
    Items,
    LocalCreditView,
    MeterBinding,
    MeterBound,
    MeterHistoryEvent,
    SwapMeter,
)

from billing.api.ids import split_ids
from billing.operations.meters import MeterOperations
from billing.store.queries import BillingQueries


def router(meters: MeterOperations, queries: BillingQueries) -> APIRouter:
    """Return the meter routes."""
    routes = APIRouter(prefix="/internal")

    @routes.post("/meter-bindings", status_code=201)
    async def bind_meter(body: BindMeter, response: Response) -> MeterBound:
        created = await meters.bind_meter(
            meter_id=body.meter_id,
            account_id=body.account_id,
            multiplier=body.multiplier,
            tariff_id=body.tariff_id,
            operator=body.operator,
            local_prepaid=body.local_prepaid,
            local_price=body.local_price,
        )
        if not created:
            response.status_code = 200
        return await queries.meter_bound(meter_id=body.meter_id, account_id=body.account_id)

    @routes.get("/meter-bindings")
    async def list_bindings(
        meter_ids: str | None = None, account_ids: str | None = None
    ) -> Items[MeterBinding]:
        return await queries.bindings(
            meter_ids=split_ids(meter_ids), account_ids=split_ids(account_ids)
        )

    @routes.post("/meters/{meter_id}/swap")
    async def swap_meter(meter_id: str, body: SwapMeter) -> Items[MeterHistoryEvent]:
        await meters.swap_meter(
            old_meter_id=meter_id,
            new_meter_id=body.new_meter_id,
            old_final_kwh=body.old_final_kwh,
            new_start_kwh=body.new_start_kwh,
            operator=body.operator,
        )
        return await queries.meter_history(body.new_meter_id)

    @routes.get("/meters/{meter_id}/history")
    async def meter_history(meter_id: str) -> Items[MeterHistoryEvent]:
        return await queries.meter_history(meter_id)

    @routes.get("/meters/{meter_id}/local-credit")
    async def local_credit(meter_id: str, limit: int = Query(50, ge=1, le=500)) -> LocalCreditView:
        return await queries.local_credit(meter_id, limit=limit)

    @routes.post("/meters/{meter_id}/local-credit/resync")
    async def resync_local_credit(meter_id: str) -> LocalCreditView:
        await meters.resync_local_credit(meter_id=meter_id)
        return await queries.local_credit(meter_id, limit=50)

    return routes
