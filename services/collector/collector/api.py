"""The collector's internal API: routes only, each calling one operation."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response
from prepaid_common.contracts.api.collector import (
    DtuList,
    DtuRegistration,
    DtuView,
    EnabledBody,
    MeterMoved,
    MeterPage,
    MeterView,
    MoveMeter,
    ReadAllQueued,
    Removed,
)

from collector.operations import CollectorOperations


def internal_router(operations: CollectorOperations) -> APIRouter:
    """Return the routes the gateway calls, bound to the collector's operations."""
    router = APIRouter(prefix="/internal")

    @router.post("/dtus", status_code=200)
    async def register(body: DtuRegistration, response: Response) -> DtuView:
        view, created = await operations.register_dtu(body=body)
        if created:
            response.status_code = 201
        return view

    @router.get("/dtus")
    async def list_dtus() -> DtuList:
        return await operations.list_dtus()

    @router.get("/meters")
    async def list_meters(
        limit: int = Query(100, ge=1, le=1000),
        offset: int = Query(0, ge=0),
        ids: str | None = Query(None, description="comma-separated meter ids"),
    ) -> MeterPage:
        wanted = None if ids is None else [i.strip() for i in ids.split(",") if i.strip()]
        return await operations.list_meters(limit=limit, offset=offset, ids=wanted)

    @router.get("/meters/{meter_id}")
    async def get_meter(meter_id: str) -> MeterView:
        return await operations.get_meter(meter_id=meter_id)

    @router.post("/meters/{meter_id}/read")
    async def read_meter(meter_id: str) -> MeterView:
        return await operations.read_meter_now(meter_id=meter_id)

    @router.patch("/dtus/{dtu_id}")
    async def set_dtu_enabled(dtu_id: str, body: EnabledBody) -> DtuView:
        return await operations.set_dtu_enabled(dtu_id=dtu_id, enabled=body.enabled)

    @router.delete("/dtus/{dtu_id}")
    async def remove_dtu(dtu_id: str) -> Removed:
        return await operations.remove_dtu(dtu_id=dtu_id)

    @router.patch("/meters/{meter_id}")
    async def set_meter_enabled(meter_id: str, body: EnabledBody) -> MeterView:
        return await operations.set_meter_enabled(meter_id=meter_id, enabled=body.enabled)

    @router.delete("/meters/{meter_id}")
    async def remove_meter(meter_id: str) -> Removed:
        return await operations.remove_meter(meter_id=meter_id)

    @router.post("/meters/{meter_id}/move")
    async def move_meter(meter_id: str, body: MoveMeter) -> MeterMoved:
        return await operations.move_meter(meter_id=meter_id, body=body)

    @router.post("/read-all", status_code=202)
    async def read_all() -> ReadAllQueued:
        return await operations.read_all_now()

    return router
