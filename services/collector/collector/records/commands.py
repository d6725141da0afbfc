"""Commands kept until the owner of a meter's DTU executes them, and their results said once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from prepaid_common.contracts import (
    AnomalyV1,
    CommandAction,
    CommandRequestV1,
    CommandResultV1,
    RelayState,
)
from prepaid_common.outbox import ServiceStore, UnitOfWork
from sqlalchemy import delete, insert, or_, select, update

from collector.metrics import COMMANDS_REFUSED
from collector.tables import meters, pending_commands


@dataclass(frozen=True)
class PendingCommand:
    command_id: str
    meter_id: str
    action: CommandAction
    envelope: str
    expires_at: datetime
    # A purchase (action "credit"): checked against what the envelope seals.
    amount: Decimal | None = None
    purchase_count: int | None = None
    # The last sealed counter taken for the meter: an envelope must carry a higher one.
    last_counter: int = 0


@dataclass(frozen=True)
class CommandOutcome:
    succeeded: bool
    relay: RelayState | None = None
    error: str = ""
    retryable: bool = True
    # The sealed counter the command's envelope carried, once verified (kept for the meter).
    counter: int | None = None


async def accept_commands(
    uow: UnitOfWork, requests: Sequence[CommandRequestV1], *, at: datetime
) -> list[str]:
    """Keep commands for our meters until they are executed; return the ids kept.

    A command for a meter no collector of this registry knows is refused: a security event
    (nothing is executed, and no result is said: the command expires at control). A command
    already kept (sent again under a new message id) is not kept twice.

    Three statements for the whole burst: the collector's loop is busy with its buses, and
    three round trips per command put a mass event's last trip seconds behind its first.
    """
    if not requests:
        return []
    meter_ids = list(dict.fromkeys(request.meter_id for request in requests))
    command_ids = list(dict.fromkeys(request.command_id for request in requests))
    known_meters = set(
        (await uow.session.scalars(select(meters.c.id).where(meters.c.id.in_(meter_ids)))).all()
    )
    already_kept = set(
        (
            await uow.session.scalars(
                select(pending_commands.c.command_id).where(
                    pending_commands.c.command_id.in_(command_ids)
                )
            )
        ).all()
    )
    rows: list[dict[str, Any]] = []
    for request in requests:
        if request.meter_id not in known_meters:
            await uow.emit(
                AnomalyV1(
                    meter_id=request.meter_id,
                    kind="command_refused",
                    detail=f"command {request.command_id} refused (unknown_meter): no such meter",
                    at=at,
                )
            )
            COMMANDS_REFUSED.labels("unknown_meter").inc()
            continue
        if request.command_id in already_kept:
            continue
        already_kept.add(request.command_id)
        rows.append(
            {
                "command_id": request.command_id,
                "meter_id": request.meter_id,
                "action": request.action,
                "envelope": request.envelope,
                "expires_at": request.expires_at,
                "received_at": at,
                "amount": request.amount,
                "purchase_count": request.purchase_count,
            }
        )
    if rows:
        await uow.session.execute(insert(pending_commands), rows)
    return [row["command_id"] for row in rows]


async def pending_for(store: ServiceStore, meter_ids: Sequence[str]) -> list[PendingCommand]:
    """Return the commands waiting for these meters, oldest first."""
    if not meter_ids:
        return []
    async with store.sessionmaker() as session:
        rows = await session.execute(
            select(pending_commands, meters.c.command_counter)
            .join(meters, meters.c.id == pending_commands.c.meter_id, isouter=True)
            .where(pending_commands.c.meter_id.in_(meter_ids))
            .order_by(pending_commands.c.received_at, pending_commands.c.command_id)
        )
        return [_pending(row) for row in rows]


def _pending(row: Any) -> PendingCommand:
    return PendingCommand(
        command_id=row.command_id,
        meter_id=row.meter_id,
        action=row.action,
        envelope=row.envelope,
        expires_at=row.expires_at,
        amount=row.amount,
        purchase_count=row.purchase_count,
        last_counter=row._mapping.get("command_counter") or 0,
    )


async def finish_command(
    store: ServiceStore, command: PendingCommand, outcome: CommandOutcome, *, at: datetime
) -> None:
    """Report a command's result, forget it, and keep the relay state the meter showed.

    Whoever deletes the pending row reports: a command is finished once, whichever replica
    gets there (its owner's bus loop, or another one expiring a forgotten command).
    """
    async with store.unit_of_work() as uow:
        claimed = await uow.session.execute(
            delete(pending_commands).where(pending_commands.c.command_id == command.command_id)
        )
        if not claimed.rowcount:  # type: ignore[attr-defined]
            return
        if outcome.relay is not None:
            await uow.session.execute(
                update(meters).where(meters.c.id == command.meter_id).values(relay=outcome.relay)
            )
        if outcome.counter is not None:
            await uow.session.execute(
                update(meters)
                .where(
                    meters.c.id == command.meter_id,
                    or_(
                        meters.c.command_counter.is_(None),
                        meters.c.command_counter < outcome.counter,
                    ),
                )
                .values(command_counter=outcome.counter)
            )
        await uow.emit(
            CommandResultV1(
                command_id=command.command_id,
                meter_id=command.meter_id,
                succeeded=outcome.succeeded,
                relay=outcome.relay,
                error=outcome.error,
                retryable=outcome.retryable,
                at=at,
            )
        )


async def meters_with_commands(store: ServiceStore) -> set[str]:
    """Return the meters that have commands waiting (any replica may have accepted them)."""
    async with store.sessionmaker() as session:
        rows = await session.execute(select(pending_commands.c.meter_id).distinct())
        return {row.meter_id for row in rows}


async def forgotten_commands(
    store: ServiceStore, *, expired_before: datetime
) -> list[PendingCommand]:
    """Return commands that expired before a bound and are still pending: no loop took them."""
    async with store.sessionmaker() as session:
        rows = await session.execute(
            select(pending_commands)
            .where(pending_commands.c.expires_at < expired_before)
            .order_by(pending_commands.c.received_at, pending_commands.c.command_id)
            .limit(1000)
        )
        return [_pending(row) for row in rows]
