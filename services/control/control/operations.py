"""What control's API does: each use case one unit of work, raising service errors."""

from __future__ import annotations

from prepaid_common.contracts import CommandAction, utcnow
from prepaid_common.contracts.api.control import (
    BatchProgress,
    CommandPage,
    CommandView,
    OperatorCommand,
    RelayPage,
    RelayView,
)
from prepaid_common.errors import Conflict, NotFound
from prepaid_common.outbox import ServiceStore

from control import store
from control.domain import progress_state
from control.handlers import CommandHandlers


async def issue_operator_command(
    service_store: ServiceStore,
    handlers: CommandHandlers,
    *,
    command: OperatorCommand,
    idempotency_key: str | None = None,
) -> CommandView:
    """Log an operator's command, send it, and return it as logged.

    The same ``idempotency_key`` again answers the command it made (Conflict if it was for
    another meter or action). The operator's trip or close is left alone for the grace
    time, then billing's decided supply is held again: an override is never permanent.
    """
    request_id = None if idempotency_key is None else f"operator:{idempotency_key}"
    async with service_store.unit_of_work() as uow:
        if request_id is not None:
            done = await store.command_for_request(uow.session, request_id)
            if done is not None:
                earlier = await store.command_by_id(uow.session, done)
                assert earlier is not None
                asked = (
                    command.meter_id,
                    command.action,
                    command.alarm_thresholds,
                    command.power_limit_kw,
                )
                done_before = (
                    earlier.meter_id,
                    earlier.action,
                    earlier.alarm_thresholds,
                    earlier.power_limit_kw,
                )
                if done_before != asked:
                    raise Conflict("this Idempotency-Key was used for another command")
                return earlier.view()
        if command.action in ("trip", "close"):
            await store.set_override(
                uow.session,
                command.meter_id,
                until=utcnow() + handlers.reconciliation.operator_grace,
            )
        command_id = await handlers.issue(
            uow,
            meter_id=command.meter_id,
            action=command.action,
            origin=f"operator:{command.operator}",
            reason=command.reason,
            request_id=request_id,
            alarm_thresholds=command.alarm_thresholds,
            power_limit_kw=command.power_limit_kw,
        )
    return await get_command(service_store, command_id=command_id)


async def get_command(service_store: ServiceStore, *, command_id: str) -> CommandView:
    """Return one command, or NotFound."""
    async with service_store.sessionmaker() as session:
        command = await store.command_by_id(session, command_id)
    if command is None:
        raise NotFound(f"command {command_id} does not exist")
    return command.view()


async def list_commands(
    service_store: ServiceStore,
    *,
    meter_id: str | None,
    limit: int,
    offset: int,
    action: CommandAction | None = None,
) -> CommandPage:
    """Return a page of commands (one meter's, or all; of one action, or all), newest first."""
    async with service_store.sessionmaker() as session:
        found = await store.command_page(
            session, meter_id=meter_id, limit=limit, offset=offset, action=action
        )
    return CommandPage(items=[command.view() for command in found], limit=limit, offset=offset)


async def sweep_expired(service_store: ServiceStore, handlers: CommandHandlers) -> int:
    """Expire the commands whose time ran out without a result; return how many."""
    async with service_store.unit_of_work() as uow:
        return await handlers.expire_overdue(uow)


async def reconcile_relays(service_store: ServiceStore, handlers: CommandHandlers) -> int:
    """Issue again the commands of meters whose relay disagrees; return how many."""
    async with service_store.unit_of_work() as uow:
        return await handlers.reconcile(uow)


async def list_relays(
    service_store: ServiceStore, *, meter_id: str | None, differing: bool, limit: int, offset: int
) -> RelayPage:
    """Return meters' decided supply beside their reported relay."""
    async with service_store.sessionmaker() as session:
        rows = await store.relay_page(
            session, meter_id=meter_id, differing=differing, limit=limit, offset=offset
        )
    return RelayPage(
        items=[RelayView.model_validate(row, from_attributes=True) for row in rows],
        limit=limit,
        offset=offset,
    )


async def get_relay(service_store: ServiceStore, *, meter_id: str) -> RelayView:
    """Return one meter's supply and relay, or NotFound."""
    page = await list_relays(service_store, meter_id=meter_id, differing=False, limit=1, offset=0)
    if not page.items:
        raise NotFound(f"control knows no relay of meter {meter_id}")
    return page.items[0]


async def batch_progress(service_store: ServiceStore, *, batch: str) -> BatchProgress:
    """Return a group command's progress (queued, sent, confirmed, failed), or NotFound."""
    async with service_store.sessionmaker() as session:
        rows = await store.batch_commands(session, batch)
    if not rows:
        raise NotFound(f"no command belongs to {batch}")
    states = [progress_state(status=row.status, supply=row.supply, relay=row.relay) for row in rows]
    return BatchProgress(
        batch=batch,
        meters=len(rows),
        queued=states.count("queued"),
        sent=states.count("sent"),
        confirmed=states.count("confirmed"),
        failed=states.count("failed"),
    )
