"""The field: DTUs and the meters behind them."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prepaid_common.contracts.api.collector import DtuList, DtuRegistration, DtuView

from gateway.api.deps import AdminUser, AuditLog, Collector, StaffUser

router = APIRouter(tags=["field"])


@router.post(
    "/dtus",
    status_code=201,
    responses={200: {"model": DtuView, "description": "Known before: updated"}},
)
async def register_dtu(
    principal: AdminUser,
    collector: Collector,
    audit: AuditLog,
    body: DtuRegistration,
    response: Response,
) -> DtuView:
    """Register (or update) a DTU and the meters behind it."""
    # Unset options are left out: the collector's defaults apply (LOGIN:<id>, HB...).
    status, dtu = await collector.post(
        "/internal/dtus", json=body.model_dump(mode="json", exclude_none=True)
    )
    response.status_code = status
    await audit.record("dtu.register", body.id, {"meters": len(body.meters)})
    return DtuView.model_validate(dtu)


@router.get("/dtus")
async def list_dtus(principal: StaffUser, collector: Collector) -> DtuList:
    """DTUs and their link state."""
    return DtuList.model_validate(await collector.get("/internal/dtus"))
