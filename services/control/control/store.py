"""The command log's SQL: one row per command, its status, attempts and error."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prepaid_common.contracts.api.control import CommandView
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from control.tables import commands


class StoredCommand(CommandView):
    """A command as logged: what the API shows, and billing's request it answers."""

    request_id: str | None

    def view(self) -> CommandView:
        """Return the command as the API shows it."""
        return CommandView(**self.model_dump(exclude={"request_id"}))


def _stored(row: Any) -> StoredCommand:
    return StoredCommand.model_validate(dict(row._mapping))


async def insert_command(session: AsyncSession, command: StoredCommand) -> None:
    """Log a new command."""
    await session.execute(insert(commands).values(**command.model_dump()))


async def command_for_request(session: AsyncSession, request_id: str) -> str | None:
    """Return the id of the command made for billing's request, or None."""
    return await session.scalar(select(commands.c.id).where(commands.c.request_id == request_id))


async def command_by_id(session: AsyncSession, command_id: str) -> StoredCommand | None:
    """Return one command, or None."""
    row = (await session.execute(select(commands).where(commands.c.id == command_id))).first()
    return None if row is None else _stored(row)


async def record_status(
    session: AsyncSession, command_id: str, *, status: str, error: str, attempts: int, at: datetime
) -> None:
    """Set a command's status, error and attempts."""
    await session.execute(
        update(commands)
        .where(commands.c.id == command_id)
        .values(status=status, error=error, attempts=attempts, updated_at=at)
    )


async def open_commands_expired(session: AsyncSession, now: datetime) -> list[StoredCommand]:
    """Return the commands still open whose time ran out."""
    rows = await session.execute(
        select(commands).where(
            commands.c.status.in_(("pending", "sent")), commands.c.expires_at <= now
        )
    )
    return [_stored(row) for row in rows.all()]


async def mark_expired(session: AsyncSession, command_id: str, *, error: str, at: datetime) -> None:
    """Mark a command expired."""
    await session.execute(
        update(commands)
        .where(commands.c.id == command_id)
        .values(status="expired", error=error, updated_at=at)
    )


async def command_page(
    session: AsyncSession, *, meter_id: str | None, limit: int, offset: int
) -> list[StoredCommand]:
    """Return a page of commands (one meter's, or all), newest first."""
    query = select(commands).order_by(commands.c.created_at.desc(), commands.c.id)
    if meter_id is not None:
        query = query.where(commands.c.meter_id == meter_id)
    rows = await session.execute(query.limit(limit).offset(offset))
    return [_stored(row) for row in rows.all()]
