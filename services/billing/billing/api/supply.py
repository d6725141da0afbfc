"""Supply routes: supply events, holds, load shedding, the site policy."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response
from prepaid_common.contracts.api.billing import (
    Created,
    HoldBody,
    HoldView,
    Items,
    ShedBody,
    ShedView,
    SitePolicy,
    SupplyEvent,
    Window,
)

from billing.operations.supply import SupplyOperations
from billing.store.queries import BillingQueries


def router(supply: SupplyOperations, queries: BillingQueries) -> APIRouter:
    """Return the supply routes."""
    routes = APIRouter(prefix="/internal")

    @routes.get("/supply-events")
    async def list_supply_events(
        meter_id: str | None = None,
        account_id: str | None = None,
        limit: int = Query(50, ge=1, le=500),
        offset: int = Query(0, ge=0),
    ) -> Window[SupplyEvent]:
        return await queries.supply_events(
            meter_id=meter_id, account_id=account_id, limit=limit, offset=offset
        )

    @routes.post("/holds", status_code=201)
    async def place_hold(body: HoldBody) -> Created:
        hold_id = await supply.place_hold(
            scope=body.scope,
            target=body.target,
            until=body.until,
            reason=body.reason,
            operator=body.operator,
        )
        return Created(id=hold_id)

    @routes.delete("/holds/{hold_id}", status_code=204)
    async def release_hold(hold_id: str) -> Response:
        await supply.release_hold(hold_id=hold_id)
        return Response(status_code=204)

    @routes.get("/holds")
    async def list_holds() -> Items[HoldView]:
        return await queries.holds()

    @routes.post("/sheds", status_code=201)
    async def start_shed(body: ShedBody) -> Created:
        shed_id = await supply.start_shed(
            group=body.group, reason=body.reason, operator=body.operator
        )
        return Created(id=shed_id)

    @routes.delete("/sheds/{shed_id}", status_code=204)
    async def end_shed(shed_id: str) -> Response:
        await supply.end_shed(shed_id=shed_id)
        return Response(status_code=204)

    @routes.get("/sheds")
    async def list_sheds() -> Items[ShedView]:
        return await queries.sheds()

    @routes.get("/policy")
    async def get_policy() -> SitePolicy:
        return await queries.policy()

    @routes.put("/policy")
    async def put_policy(body: SitePolicy) -> SitePolicy:
        await supply.set_policy(policy=body)
        return body

    return routes
