"""Meters: their state, reading them now, relay commands, local credit, history and swaps."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import APIRouter
from prepaid_common.contracts.api.billing import (
    Items,
    LocalCreditView,
    MeterHistoryEvent,
    SupplyEvent,
    SwapMeter,
    Window,
)
from prepaid_common.contracts.api.collector import MeterView, ReadAllQueued
from prepaid_common.contracts.api.control import (
    CommandBody,
    CommandPage,
    CommandView,
    OperatorAction,
    PowerLimitBody,
)
from prepaid_common.contracts.api.gateway import PublicMeter, PublicMeterPage
from prepaid_common.errors import Conflict, ServiceError
from prepaid_common.http_errors import problem_responses

from gateway.api.deps import (
    AuditLog,
    Billing,
    Collector,
    Control,
    CurrentUser,
    Limit,
    Offset,
    PathId,
    StaffUser,
    as_operator,
)
from gateway.public_meters import meter_page, visible_meter, with_accounts

router = APIRouter(tags=["meters"])

_PROBLEM = problem_responses(409)[409]


@router.get("/meters")
async def list_meters(
    principal: CurrentUser,
    collector: Collector,
    billing: Billing,
    limit: Limit = 50,
    offset: Offset = 0,
) -> PublicMeterPage:
    """List meters with their relay, link state and last reading (tenants: their own)."""
    return await meter_page(
        principal=principal, collector=collector, billing=billing, limit=limit, offset=offset
    )


@router.get("/meters/{meter_id}")
async def get_meter(
    principal: CurrentUser,
    collector: Collector,
    billing: Billing,
    control: Control,
    meter_id: PathId,
) -> PublicMeter:
    """One meter; a model with a power limit shows the limit last asked and the one the
    meter reports."""
    return await visible_meter(
        principal=principal,
        collector=collector,
        billing=billing,
        meter_id=meter_id,
        control=control,
    )


@router.post("/meters/read-all", status_code=202)
async def read_all_meters_now(
    principal: StaffUser, collector: Collector, audit: AuditLog
) -> ReadAllQueued:
    """Read every meter now, ahead of the polling cycles (on every collector)."""
    _, body = await collector.post("/internal/read-all", json=None)
    queued = ReadAllQueued.model_validate(body)
    await audit.record("meters.read_all", "*", queued.model_dump(mode="json"))
    return queued


@router.post(
    "/meters/{meter_id}/read",
    responses={
        409: {**_PROBLEM, "description": "Its DTU is offline (or the meter disabled)"},
        503: {**_PROBLEM, "description": "The meter did not answer; try again later"},
    },
)
async def read_meter_now(
    principal: StaffUser, collector: Collector, billing: Billing, audit: AuditLog, meter_id: PathId
) -> PublicMeter:
    """Read a meter now, ahead of its polling cycle."""
    try:
        _, meter = await collector.post(f"/internal/meters/{meter_id}/read", json=None)
    except ServiceError as error:
        # An attempt is audited whatever came of it (an offline DTU, an unknown meter).
        await audit.record("meter.read", meter_id, {"outcome": error.code})
        raise
    await audit.record("meter.read", meter_id, {"outcome": "read"})
    return (await with_accounts(billing, [meter]))[0]


@router.post(
    "/meters/{meter_id}/commands",
    status_code=202,
    responses={409: {**_PROBLEM, "description": "Its model cannot carry the command out"}},
)
async def command_meter(
    principal: StaffUser,
    collector: Collector,
    control: Control,
    audit: AuditLog,
    meter_id: PathId,
    body: CommandBody,
) -> CommandView:
    """Command a meter: trip, close, hold-power on or off, set its clock, or set its credit
    alarm levels; 409 when its model cannot carry the command out (nothing is queued)."""
    return await _issue(
        principal.username,
        collector,
        control,
        audit,
        meter_id,
        body.action,
        body.model_dump(mode="json", exclude_none=True),
    )


@router.put(
    "/meters/{meter_id}/power-limit",
    status_code=202,
    responses={409: {**_PROBLEM, "description": "Its model has no power limit"}},
)
async def set_power_limit(
    principal: StaffUser,
    collector: Collector,
    control: Control,
    audit: AuditLog,
    meter_id: PathId,
    body: PowerLimitBody,
) -> CommandView:
    """Write a power limit (限功率, kW) to a meter whose model has one: the meter trips its
    own relay when its power goes above it. 409 naming the profile when its model has none
    (nothing is queued); the command's read-back is its success."""
    parameters = {"action": "power_limit", "power_limit_kw": str(body.kw), "reason": body.reason}
    return await _issue(
        principal.username, collector, control, audit, meter_id, "power_limit", parameters
    )


async def _issue(
    operator: str,
    collector: Collector,
    control: Control,
    audit: AuditLog,
    meter_id: str,
    action: OperatorAction,
    parameters: Mapping[str, object],
) -> CommandView:
    meter = MeterView.model_validate(await collector.get(f"/internal/meters/{meter_id}"))
    if meter.commands is not None and action not in meter.commands:
        can = ", ".join(meter.commands) or "none"
        raise Conflict(
            f"meter {meter_id} (profile {meter.profile}) cannot carry out {action}; "
            f"its model takes: {can}"
        )
    _, answer = await control.post(
        "/internal/commands",
        json={**parameters, "meter_id": meter_id, "operator": operator},
    )
    command = CommandView.model_validate(answer)
    details: dict[str, object] = {"command_id": command.id}
    if command.power_limit_kw is not None:
        details["kw"] = str(command.power_limit_kw)
    await audit.record(f"meter.{action}", meter_id, details)
    return command


@router.get("/meters/{meter_id}/commands")
async def meter_commands(
    principal: StaffUser, control: Control, meter_id: PathId, limit: Limit = 50, offset: Offset = 0
) -> CommandPage:
    """Commands sent to a meter, newest first."""
    return CommandPage.model_validate(
        await control.get("/internal/commands", meter_id=meter_id, limit=limit, offset=offset)
    )


@router.get("/commands/{command_id}")
async def get_command(principal: StaffUser, control: Control, command_id: PathId) -> CommandView:
    """One command and its status."""
    return CommandView.model_validate(await control.get(f"/internal/commands/{command_id}"))


@router.get("/meters/{meter_id}/supply-events")
async def supply_events(
    principal: StaffUser, billing: Billing, meter_id: PathId, limit: Limit = 50, offset: Offset = 0
) -> Window[SupplyEvent]:
    """Every automatic trip or close decision for the meter, with its reason."""
    return Window[SupplyEvent].model_validate(
        await billing.get("/internal/supply-events", meter_id=meter_id, limit=limit, offset=offset)
    )


@router.get("/meters/{meter_id}/local-credit")
async def local_credit(
    principal: StaffUser, billing: Billing, meter_id: PathId, limit: Limit = 50
) -> LocalCreditView:
    """A local-prepaid meter's read-back against the ledger, and its purchases."""
    return LocalCreditView.model_validate(
        await billing.get(f"/internal/meters/{meter_id}/local-credit", limit=limit)
    )


@router.post("/meters/{meter_id}/local-credit/resync")
async def resync_local_credit(
    principal: StaffUser, billing: Billing, audit: AuditLog, meter_id: PathId
) -> LocalCreditView:
    """Compare a local-prepaid meter from its next reading on; purchases not delivered
    get counts from there (after a refusal, a repair or a reset)."""
    _, view = await billing.post(f"/internal/meters/{meter_id}/local-credit/resync", json=None)
    await audit.record("meter.local_credit_resync", meter_id)
    return LocalCreditView.model_validate(view)


@router.get("/meters/{meter_id}/history")
async def meter_history(
    principal: StaffUser, billing: Billing, meter_id: PathId
) -> Items[MeterHistoryEvent]:
    """Bindings and swaps of the meter, with final readings."""
    return Items[MeterHistoryEvent].model_validate(
        await billing.get(f"/internal/meters/{meter_id}/history")
    )


@router.post("/meters/{meter_id}/swap")
async def swap_meter(
    principal: StaffUser,
    collector: Collector,
    billing: Billing,
    audit: AuditLog,
    meter_id: PathId,
    body: SwapMeter,
) -> Items[MeterHistoryEvent]:
    """Replace a meter (换表) on the same account, recording both final readings."""
    await collector.get(f"/internal/meters/{body.new_meter_id}")
    _, history = await billing.post(
        f"/internal/meters/{meter_id}/swap", json=as_operator(body, principal)
    )
    await audit.record("meter.swap", meter_id, body.model_dump(mode="json"))
    return Items[MeterHistoryEvent].model_validate(history)
