"""What control's API does: each use case one unit of work, raising service errors."""

from __future__ import annotations

from prepaid_common.contracts.api.control import CommandPage, CommandView, OperatorCommand
from prepaid_common.errors import NotFound
from prepaid_common.outbox import ServiceStore

from control import store
from control.handlers import CommandHandlers


async def issue_operator_command(
    service_store: ServiceStore, handlers: CommandHandlers, *, command: OperatorCommand
) -> CommandView:
    """Log an operator's relay command, send it, and return it as logged."""
    async with service_store.unit_of_work() as uow:
        command_id = await handlers.issue(
            uow,
            meter_id=command.meter_id,
            action=command.action,
            origin=f"operator:{command.operator}",
            reason=command.reason,
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
    service_store: ServiceStore, *, meter_id: str | None, limit: int, offset: int
) -> CommandPage:
    """Return a page of commands (one meter's, or all), newest first."""
    async with service_store.sessionmaker() as session:
        found = await store.command_page(session, meter_id=meter_id, limit=limit, offset=offset)
    return CommandPage(items=[command.view() for command in found], limit=limit, offset=offset)


async def sweep_expired(service_store: ServiceStore, handlers: CommandHandlers) -> int:
    """Expire the commands whose time ran out without a result; return how many."""
    async with service_store.unit_of_work() as uow:
        return await handlers.expire_overdue(uow)
