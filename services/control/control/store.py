"""The command log's SQL: one row per command, its status, attempts and error."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prepaid_common.contracts.api.control import AlarmThresholds, CommandView
from prepaid_common.sealing import Algorithm
from sqlalchemy import and_, bindparam, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from control.domain import RelayTruth, Supply
from control.tables import commands, meters


class StoredCommand(CommandView):
    """A command as logged: what the API shows, and billing's request it answers."""

    request_id: str | None
    batch: str | None = None

    def view(self) -> CommandView:
        """Return the command as the API shows it."""
        return CommandView(**self.model_dump(exclude={"request_id", "batch"}))


def _stored(row: Any) -> StoredCommand:
    fields = dict(row._mapping)
    first, second = fields.pop("alarm_first", None), fields.pop("alarm_second", None)
    if first is not None and second is not None:
        fields["alarm_thresholds"] = AlarmThresholds(first=first, second=second)
    return StoredCommand.model_validate(fields)


async def insert_command(session: AsyncSession, command: StoredCommand) -> None:
    """Log a new command."""
    levels = command.alarm_thresholds
    await session.execute(
        insert(commands).values(
            **command.model_dump(exclude={"alarm_thresholds"}),
            alarm_first=None if levels is None else levels.first,
            alarm_second=None if levels is None else levels.second,
        )
    )


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
    session: AsyncSession,
    *,
    meter_id: str | None,
    limit: int,
    offset: int,
    action: str | None = None,
) -> list[StoredCommand]:
    """Return a page of commands (one meter's, or all; of one action, or all), newest first."""
    query = select(commands).order_by(commands.c.created_at.desc(), commands.c.id)
    if meter_id is not None:
        query = query.where(commands.c.meter_id == meter_id)
    if action is not None:
        query = query.where(commands.c.action == action)
    rows = await session.execute(query.limit(limit).offset(offset))
    return [_stored(row) for row in rows.all()]


# --- meters: envelope counters and relay truth -----------------------------------------

_OPEN = ("pending", "sent")


async def _ensure_meter(session: AsyncSession, meter_id: str) -> None:
    # A decision and a request for a new meter may arrive at once on two queues: the row is
    # created once, whichever gets there first.
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    await session.execute(
        dialect.insert(meters)
        .values(
            meter_id=meter_id,
            counter=0,
            algorithm="3des",
            reissues=0,
            alarmed=False,
            unconfirmed=False,
        )
        .on_conflict_do_nothing(index_elements=["meter_id"])
    )


async def next_counter(session: AsyncSession, meter_id: str) -> tuple[int, Algorithm]:
    """Take the meter's next envelope counter; return it with the meter's algorithm."""
    await _ensure_meter(session, meter_id)
    await session.execute(
        update(meters).where(meters.c.meter_id == meter_id).values(counter=meters.c.counter + 1)
    )
    row = (
        await session.execute(
            select(meters.c.counter, meters.c.algorithm).where(meters.c.meter_id == meter_id)
        )
    ).one()
    return int(row.counter), row.algorithm


async def set_supply(
    session: AsyncSession, meter_id: str, *, supply: Supply, reason: str, at: datetime
) -> None:
    """Record billing's decided supply, unless a later decision is already kept.

    Billing's relay requests and its announcements (a meter bound or swapped in) reach
    control on two queues, so one may overtake the other: an announcement of "off" arriving
    after a top-up's "on" would cut a tenant who has paid. A decision that changes the
    supply starts its reconciliation afresh and ends an operator's override; the same
    decision again (a bind's announcement after its own trip request) restarts the
    reconciliation but leaves an operator's trip or close in force for its grace.
    """
    await _ensure_meter(session, meter_id)
    kept = (
        await session.execute(
            select(meters.c.supply, meters.c.supply_at)
            .where(meters.c.meter_id == meter_id)
            .with_for_update()
        )
    ).one()
    if kept.supply_at is not None and at < kept.supply_at:
        return
    values: dict[str, Any] = {
        "supply": supply,
        "supply_reason": reason[:400],
        "supply_at": at,
        "next_attempt_at": None,
        "reissues": 0,
    }
    if kept.supply != supply:
        values["override_until"] = None
    await session.execute(update(meters).where(meters.c.meter_id == meter_id).values(**values))


async def set_override(session: AsyncSession, meter_id: str, *, until: datetime) -> None:
    """Leave an operator's trip or close alone until ``until``."""
    await _ensure_meter(session, meter_id)
    await session.execute(
        update(meters).where(meters.c.meter_id == meter_id).values(override_until=until)
    )


async def report_relays(session: AsyncSession, reports: list[tuple[str, str, datetime]]) -> None:
    """Keep the relay states meters reported (meter, state, read at), newest report wins.

    Only meters control knows are kept, and a report older than the one kept is ignored
    (a reading taken before a switch may arrive after its result).
    """
    if not reports:
        return
    await session.execute(
        update(meters)
        .where(
            meters.c.meter_id == bindparam("m"),
            or_(meters.c.relay_at.is_(None), meters.c.relay_at < bindparam("at")),
            or_(meters.c.relay.is_(None), meters.c.relay != bindparam("state")),
        )
        .values(relay=bindparam("state"), relay_at=bindparam("at"), unconfirmed=False),
        # In meter order: the rows are locked in the order of a burst of relay requests
        # (handlers.on_relay_requests), so the two cannot deadlock.
        [
            {"m": meter, "state": state, "at": at}
            for meter, state, at in sorted(reports, key=lambda r: (r[0], r[2]))
        ],
        execution_options={"synchronize_session": False},
    )


def _truth(row: Any) -> RelayTruth:
    return RelayTruth(
        meter_id=row.meter_id,
        supply=row.supply,
        relay=row.relay,
        differs_since=row.differs_since,
        next_attempt_at=row.next_attempt_at,
        reissues=row.reissues,
        alarmed=row.alarmed,
        override_until=row.override_until,
        unconfirmed=row.unconfirmed,
    )


_DIFFERS = or_(
    meters.c.differs_since.is_not(None),
    and_(meters.c.supply.is_not(None), meters.c.relay.is_(None), meters.c.unconfirmed),
    and_(meters.c.supply == "on", meters.c.relay == "open"),
    and_(meters.c.supply == "off", meters.c.relay == "closed"),
)


async def due_now(session: AsyncSession, meter_id: str, *, at: datetime) -> None:
    """Bring a disagreeing meter's next re-issue forward to ``at`` (it came back online)."""
    await session.execute(
        update(meters)
        .where(meters.c.meter_id == meter_id, meters.c.next_attempt_at > at)
        .values(next_attempt_at=at)
    )


async def mark_unconfirmed(session: AsyncSession, meter_id: str) -> None:
    """Note that a command to switch the meter failed while no relay state is known."""
    await session.execute(
        update(meters)
        .where(meters.c.meter_id == meter_id, meters.c.relay.is_(None))
        .values(unconfirmed=True)
    )


async def to_reconcile(session: AsyncSession, *, limit: int) -> list[RelayTruth]:
    """Return meters whose relay disagrees with their supply, or did at the last sweep."""
    rows = await session.execute(
        select(meters).where(_DIFFERS).order_by(meters.c.meter_id).limit(limit)
    )
    return [_truth(row) for row in rows.all()]


async def meters_with_open_commands(session: AsyncSession, meter_ids: list[str]) -> set[str]:
    """Return which of the meters have a command still in flight."""
    if not meter_ids:
        return set()
    rows = await session.execute(
        select(commands.c.meter_id)
        .where(commands.c.meter_id.in_(meter_ids), commands.c.status.in_(_OPEN))
        .distinct()
    )
    return set(rows.scalars().all())


async def record_reconciliation(
    session: AsyncSession,
    meter_id: str,
    *,
    differs_since: datetime | None,
    next_attempt_at: datetime | None,
    reissues: int,
    alarmed: bool,
) -> None:
    """Keep where a meter's reconciliation stands."""
    await session.execute(
        update(meters)
        .where(meters.c.meter_id == meter_id)
        .values(
            differs_since=differs_since,
            next_attempt_at=next_attempt_at,
            reissues=reissues,
            alarmed=alarmed,
        )
    )


async def relay_page(
    session: AsyncSession, *, meter_id: str | None, differing: bool, limit: int, offset: int
) -> list[Any]:
    """Return meters' supply and relay rows (one, all, or those that differ), by id."""
    query = select(meters).order_by(meters.c.meter_id)
    if meter_id is not None:
        query = query.where(meters.c.meter_id == meter_id)
    if differing:
        query = query.where(_DIFFERS)
    return list((await session.execute(query.limit(limit).offset(offset))).all())


async def batch_commands(session: AsyncSession, batch: str) -> list[Any]:
    """Return each meter's latest command of a group command, with the meter's relay truth."""
    rows = await session.execute(
        select(
            commands.c.meter_id,
            commands.c.status,
            commands.c.created_at,
            meters.c.supply,
            meters.c.relay,
        )
        .join(meters, meters.c.meter_id == commands.c.meter_id, isouter=True)
        .where(commands.c.batch == batch)
        .order_by(commands.c.meter_id, commands.c.created_at.desc())
    )
    latest: dict[str, Any] = {}
    for row in rows.all():
        latest.setdefault(row.meter_id, row)
    return list(latest.values())
