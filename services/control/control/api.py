"""Control's internal API: routes only, each calling one operation."""

from __future__ import annotations

from fastapi import APIRouter, Header, Query
from prepaid_common.contracts import CommandAction
from prepaid_common.contracts.api.control import (
    BatchProgress,
    CommandPage,
    CommandView,
    OperatorCommand,
    RelayPage,
    RelayView,
)
from prepaid_common.outbox import ServiceStore

from control import operations
from control.handlers import CommandHandlers


def internal_router(store: ServiceStore, handlers: CommandHandlers) -> APIRouter:
    """Return the routes the gateway calls, bound to the service's store and handlers."""
    router = APIRouter(prefix="/internal")

    @router.post("/commands", status_code=202)
    async def operator_command(
        body: OperatorCommand,
        idempotency_key: str | None = Header(
            default=None, alias="Idempotency-Key", min_length=1, max_length=48
        ),
    ) -> CommandView:
        return await operations.issue_operator_command(
            store, handlers, command=body, idempotency_key=idempotency_key
        )

    @router.get("/commands/{command_id}")
    async def get_command(command_id: str) -> CommandView:
        return await operations.get_command(store, command_id=command_id)

    @router.get("/commands")
    async def list_commands(
        meter_id: str | None = None,
        action: CommandAction | None = None,
        limit: int = Query(50, ge=1, le=500),
        offset: int = Query(0, ge=0),
    ) -> CommandPage:
        return await operations.list_commands(
            store, meter_id=meter_id, limit=limit, offset=offset, action=action
        )

    @router.get("/relays")
    async def list_relays(
        differing: bool = False,
        limit: int = Query(50, ge=1, le=500),
        offset: int = Query(0, ge=0),
    ) -> RelayPage:
        return await operations.list_relays(
            store, meter_id=None, differing=differing, limit=limit, offset=offset
        )

    @router.get("/relays/{meter_id}")
    async def get_relay(meter_id: str) -> RelayView:
        return await operations.get_relay(store, meter_id=meter_id)

    @router.get("/batches/{batch}")
    async def batch_progress(batch: str) -> BatchProgress:
        return await operations.batch_progress(store, batch=batch)

    return router
