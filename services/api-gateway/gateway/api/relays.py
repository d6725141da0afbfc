"""Relay truth and group commands: each meter's reported relay beside its decided supply,
and how far a group command (a load shedding, or its end) has got."""

from __future__ import annotations

from fastapi import APIRouter, Query
from prepaid_common.contracts.api.control import BatchProgress, RelayPage, RelayView

from gateway.api.deps import Control, Limit, Offset, PathId, StaffUser

router = APIRouter(tags=["supply"])


@router.get("/relays")
async def list_relays(
    principal: StaffUser,
    control: Control,
    disagreeing: bool = Query(
        False, description="only meters whose relay disagrees with their decided supply"
    ),
    limit: Limit = 50,
    offset: Offset = 0,
) -> RelayPage:
    """Meters' reported `relay` beside their decided `supply`, and since when they differ."""
    return RelayPage.model_validate(
        await control.get("/internal/relays", differing=disagreeing, limit=limit, offset=offset)
    )


@router.get("/relays/{meter_id}")
async def get_relay(principal: StaffUser, control: Control, meter_id: PathId) -> RelayView:
    """One meter's relay truth; 404 while control has neither a decision nor a report."""
    return RelayView.model_validate(await control.get(f"/internal/relays/{meter_id}"))


@router.get("/command-batches/{batch_id}")
async def command_batch(principal: StaffUser, control: Control, batch_id: PathId) -> BatchProgress:
    """A group command's progress, meter by meter counted: queued, sent, confirmed, failed.

    A load shedding's commands are batch ``shed:<id>``, its end's ``shed:<id>:end``; 404
    for a batch no command belongs to.
    """
    return BatchProgress.model_validate(await control.get(f"/internal/batches/{batch_id}"))
