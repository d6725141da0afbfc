"""The field: DTUs and the meters behind them, as installers change it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from prepaid_common.contracts.api.collector import (
    DtuList,
    DtuRegistration,
    DtuView,
    EnabledBody,
    MeterMoved,
    MeterView,
    MoveMeter,
    Removed,
)
from prepaid_common.errors import Conflict
from prepaid_common.http_errors import problem_responses

from gateway.api.deps import AdminUser, AuditLog, Billing, Collector, PathId, StaffUser
from gateway.upstream import Upstream

router = APIRouter(tags=["field"])

_CLASH: dict[int | str, dict[str, Any]] = {
    409: {**problem_responses(409)[409], "description": "Clashes with what is registered (named)"}
}
_BOUND: dict[int | str, dict[str, Any]] = {
    409: {**problem_responses(409)[409], "description": "A meter is bound to an account (named)"}
}


@router.post(
    "/dtus",
    status_code=201,
    responses={200: {"model": DtuView, "description": "Known before: updated"}, **_CLASH},
)
async def register_dtu(
    principal: AdminUser,
    collector: Collector,
    audit: AuditLog,
    body: DtuRegistration,
    response: Response,
) -> DtuView:
    """Register (or update) a DTU and the meters behind it; never moves a meter another DTU
    holds (409 naming it: see POST /meters/{id}/move)."""
    # Unset options are left out: the collector's defaults apply (LOGIN:<id>, HB...).
    status, dtu = await collector.post(
        "/internal/dtus", json=body.model_dump(mode="json", exclude_none=True)
    )
    response.status_code = status
    await audit.record("dtu.register", body.id, {"meters": len(body.meters)})
    return DtuView.model_validate(dtu)


@router.get("/dtus")
async def list_dtus(principal: StaffUser, collector: Collector) -> DtuList:
    """DTUs, their link state (why offline, since when, next attempt) and meters."""
    return DtuList.model_validate(await collector.get("/internal/dtus"))


@router.patch("/dtus/{dtu_id}")
async def set_dtu_enabled(
    principal: AdminUser, collector: Collector, audit: AuditLog, dtu_id: PathId, body: EnabledBody
) -> DtuView:
    """Enable or disable a DTU (a disabled one is kept, not polled)."""
    _, dtu = await collector.call("PATCH", f"/internal/dtus/{dtu_id}", json=body.model_dump())
    await audit.record("dtu.enable" if body.enabled else "dtu.disable", dtu_id)
    return DtuView.model_validate(dtu)


@router.delete("/dtus/{dtu_id}", responses=_BOUND)
async def remove_dtu(
    principal: AdminUser,
    collector: Collector,
    billing: Billing,
    audit: AuditLog,
    dtu_id: PathId,
) -> Removed:
    """Remove a DTU and its meters; refused while one of them is bound to an account."""
    dtus = DtuList.model_validate(await collector.get("/internal/dtus"))
    mine = [dtu for dtu in dtus.items if dtu.id == dtu_id]
    if mine:
        await _refuse_bound(billing, mine[0].meter_ids)
    _, removed = await collector.call("DELETE", f"/internal/dtus/{dtu_id}")
    answer = Removed.model_validate(removed)
    await audit.record("dtu.remove", dtu_id, {"meters": answer.meter_ids})
    return answer


@router.patch("/meters/{meter_id}")
async def set_meter_enabled(
    principal: AdminUser,
    collector: Collector,
    audit: AuditLog,
    meter_id: PathId,
    body: EnabledBody,
) -> MeterView:
    """Enable or disable a meter (a disabled one is kept, not polled)."""
    _, meter = await collector.call("PATCH", f"/internal/meters/{meter_id}", json=body.model_dump())
    await audit.record("meter.enable" if body.enabled else "meter.disable", meter_id)
    return MeterView.model_validate(meter)


@router.delete("/meters/{meter_id}", responses=_BOUND)
async def remove_meter(
    principal: AdminUser,
    collector: Collector,
    billing: Billing,
    audit: AuditLog,
    meter_id: PathId,
) -> Removed:
    """Remove a meter; refused while it is bound to an account."""
    await collector.get(f"/internal/meters/{meter_id}")
    await _refuse_bound(billing, [meter_id])
    _, removed = await collector.call("DELETE", f"/internal/meters/{meter_id}")
    await audit.record("meter.remove", meter_id)
    return Removed.model_validate(removed)


@router.post("/meters/{meter_id}/move", responses=_CLASH)
async def move_meter(
    principal: AdminUser,
    collector: Collector,
    audit: AuditLog,
    meter_id: PathId,
    body: MoveMeter,
) -> MeterMoved:
    """Move a meter to another DTU, address or profile: read at its old place first (its
    final reading there), then polled and identified at the new one."""
    _, moved = await collector.post(
        f"/internal/meters/{meter_id}/move", json=body.model_dump(mode="json")
    )
    answer = MeterMoved.model_validate(moved)
    final = answer.final_reading
    await audit.record(
        "meter.move",
        meter_id,
        {
            "from": f"{answer.from_dtu_id}/{answer.from_address} ({answer.from_profile})",
            "to": f"{answer.meter.dtu_id}/{answer.meter.address} ({answer.meter.profile})",
            "final_kwh": None if final is None else str(final.energy_kwh),
            "final_source": None if final is None else final.source,
            "reason": body.reason,
        },
    )
    return answer


async def _refuse_bound(billing: Upstream, meter_ids: list[str]) -> None:
    """409 naming the account of each meter bound to one."""
    if not meter_ids:
        return
    bindings = await billing.get("/internal/meter-bindings", meter_ids=",".join(meter_ids))
    bound = [f"{b['meter_id']} (account {b['account_id']})" for b in bindings["items"]]
    if bound:
        raise Conflict(
            f"bound to an account: {', '.join(bound)}; swap the meter out of its account "
            "first (POST /meters/{id}/swap)"
        )
