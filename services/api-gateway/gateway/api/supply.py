"""Supply: holds (保电), load shedding and the site policy."""

from __future__ import annotations

import re

from fastapi import APIRouter, Response
from prepaid_common.contracts.api.billing import (
    Created,
    HoldBody,
    HoldView,
    Items,
    ShedBody,
    ShedView,
    SitePolicy,
)
from prepaid_common.contracts.identifiers import IDENTIFIER_PATTERN
from prepaid_common.errors import NotFound

from gateway.api.deps import (
    AdminUser,
    AuditLog,
    Billing,
    Collector,
    PathId,
    StaffUser,
    as_operator,
)

router = APIRouter(tags=["supply"])


@router.post("/holds", status_code=201)
async def place_hold(
    principal: StaffUser, collector: Collector, billing: Billing, audit: AuditLog, body: HoldBody
) -> Created:
    """Hold power (保电) for a meter, a group or everyone, optionally until a time.

    A meter the collector does not know, or a group no account is in: 404; an ``until``
    that has passed: 422."""
    if body.scope == "meter":
        if re.fullmatch(IDENTIFIER_PATTERN, body.target) is None:
            raise NotFound(f"meter {body.target} does not exist")
        await collector.get(f"/internal/meters/{body.target}")
    _, hold = await billing.post("/internal/holds", json=as_operator(body, principal))
    await audit.record("hold.place", body.target, body.model_dump(mode="json"))
    return Created.model_validate(hold)


@router.get("/holds")
async def list_holds(principal: StaffUser, billing: Billing) -> Items[HoldView]:
    """Holds in force (not released, not past their ``until``)."""
    return Items[HoldView].model_validate(await billing.get("/internal/holds"))


@router.delete("/holds/{hold_id}", status_code=204)
async def release_hold(
    principal: StaffUser, billing: Billing, audit: AuditLog, hold_id: PathId
) -> Response:
    """Release a hold; supply is re-decided at once."""
    await billing.call("DELETE", f"/internal/holds/{hold_id}")
    await audit.record("hold.release", hold_id)
    return Response(status_code=204)


@router.post("/sheds", status_code=201)
async def start_shed(
    principal: StaffUser, billing: Billing, audit: AuditLog, body: ShedBody
) -> Created:
    """Cut a group (building, floor, tenant class), sparing protected accounts; a group no
    account is in: 404."""
    _, shed = await billing.post("/internal/sheds", json=as_operator(body, principal))
    await audit.record("shed.start", body.group, body.model_dump(mode="json"))
    return Created.model_validate(shed)


@router.get("/sheds")
async def list_sheds(principal: StaffUser, billing: Billing) -> Items[ShedView]:
    """Load shedding, current and past."""
    return Items[ShedView].model_validate(await billing.get("/internal/sheds"))


@router.delete("/sheds/{shed_id}", status_code=204)
async def end_shed(
    principal: StaffUser, billing: Billing, audit: AuditLog, shed_id: PathId
) -> Response:
    """End a shedding; the group's meters are restored where credit allows."""
    await billing.call("DELETE", f"/internal/sheds/{shed_id}")
    await audit.record("shed.end", shed_id)
    return Response(status_code=204)


@router.get("/policy")
async def get_policy(principal: StaffUser, billing: Billing) -> SitePolicy:
    """Site policy: time zone, friendly hours, holidays."""
    return SitePolicy.model_validate(await billing.get("/internal/policy"))


@router.put("/policy")
async def put_policy(
    principal: AdminUser, billing: Billing, audit: AuditLog, body: SitePolicy
) -> SitePolicy:
    """Replace the site policy."""
    _, policy = await billing.call("PUT", "/internal/policy", json=body.model_dump(mode="json"))
    await audit.record("policy.set", "site", body.model_dump(mode="json"))
    return SitePolicy.model_validate(policy)
