"""Tariffs and their versions."""

from __future__ import annotations

from fastapi import APIRouter
from prepaid_common.contracts.api.billing import (
    Items,
    TariffBody,
    TariffDefined,
    TariffSummary,
    TariffView,
)

from gateway.api.deps import AdminUser, AuditLog, Billing, PathId, StaffUser, as_operator

router = APIRouter(tags=["tariffs"])


@router.post("/tariffs", status_code=201)
async def define_tariff(
    principal: AdminUser, billing: Billing, audit: AuditLog, body: TariffBody
) -> TariffDefined:
    """Create a tariff, or schedule a new version of an existing one."""
    _, answer = await billing.post("/internal/tariffs", json=as_operator(body, principal))
    tariff = TariffDefined.model_validate(answer)
    await audit.record("tariff.define", body.id, {"version_id": tariff.version_id})
    return tariff


@router.get("/tariffs")
async def list_tariffs(principal: StaffUser, billing: Billing) -> Items[TariffSummary]:
    """Tariffs."""
    return Items[TariffSummary].model_validate(await billing.get("/internal/tariffs"))


@router.get("/tariffs/{tariff_id}")
async def get_tariff(principal: StaffUser, billing: Billing, tariff_id: PathId) -> TariffView:
    """A tariff and every version, past and scheduled."""
    return TariffView.model_validate(await billing.get(f"/internal/tariffs/{tariff_id}"))
