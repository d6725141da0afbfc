"""Meter states as kept: one row per condition kind, written by the bus loops (link and
identity) and by whoever watches a meter's clock; read by the API's views."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime

from prepaid_common.contracts import AnomalyV1
from prepaid_common.contracts.api.collector import MeterState
from prepaid_common.outbox import ServiceStore, UnitOfWork
from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from collector.tables import meter_states, meters


async def note_state(
    uow: UnitOfWork,
    *,
    meter_id: str,
    kind: str,
    reason: str,
    detail: str,
    at: datetime,
    until: datetime | None = None,
) -> bool:
    """Keep a meter's condition of one kind; True if it is new (a new episode or reason)."""
    row = (
        await uow.session.execute(
            select(meter_states.c.reason, meter_states.c.count.label("seen")).where(
                meter_states.c.meter_id == meter_id, meter_states.c.kind == kind
            )
        )
    ).first()
    if row is not None and row.reason == reason:
        await uow.session.execute(
            update(meter_states)
            .where(meter_states.c.meter_id == meter_id, meter_states.c.kind == kind)
            .values(detail=detail[:400], count=row.seen + 1, until=until)
        )
        return False
    values = {"reason": reason, "detail": detail[:400], "since": at, "count": 1, "until": until}
    if row is None:
        await uow.session.execute(
            insert(meter_states).values(meter_id=meter_id, kind=kind, **values)
        )
    else:
        await uow.session.execute(
            update(meter_states)
            .where(meter_states.c.meter_id == meter_id, meter_states.c.kind == kind)
            .values(**values)
        )
    return True


async def set_meter_state(
    store: ServiceStore,
    *,
    meter_id: str,
    kind: str,
    reason: str,
    detail: str,
    at: datetime,
    until: datetime | None = None,
    anomaly: bool = False,
) -> bool:
    """Keep a meter's condition; with ``anomaly``, tell operators once per episode.

    Returns True if the condition is new. For the clock, say: ``set_meter_state(store,
    meter_id=..., kind="clock", reason="clock", detail="off by +700 s", at=now,
    anomaly=True)``, and ``clear_meter_state(store, meter_id, kinds=["clock"])`` once right.
    """
    async with store.unit_of_work() as uow:
        new = await note_state(
            uow, meter_id=meter_id, kind=kind, reason=reason, detail=detail, at=at, until=until
        )
        if new and anomaly:
            await uow.emit(AnomalyV1(meter_id=meter_id, kind=reason, detail=detail, at=at))
    return new


async def clear_meter_state(store: ServiceStore, meter_id: str, *, kinds: Collection[str]) -> None:
    """End a meter's conditions of these kinds (nothing if it had none)."""
    async with store.unit_of_work() as uow:
        await uow.session.execute(
            delete(meter_states).where(
                meter_states.c.meter_id == meter_id, meter_states.c.kind.in_(list(kinds))
            )
        )


async def meters_with_states(store: ServiceStore, meter_ids: Iterable[str]) -> set[str]:
    """Return which of these meters have any condition kept."""
    wanted = list(meter_ids)
    if not wanted:
        return set()
    async with store.sessionmaker() as session:
        rows = await session.execute(
            select(meter_states.c.meter_id).where(meter_states.c.meter_id.in_(wanted)).distinct()
        )
        return {row.meter_id for row in rows}


async def states_of(
    session: AsyncSession, meter_ids: Collection[str]
) -> dict[str, list[MeterState]]:
    """Return each meter's conditions, oldest first."""
    if not meter_ids:
        return {}
    rows = await session.execute(
        select(meter_states)
        .where(meter_states.c.meter_id.in_(list(meter_ids)))
        .order_by(meter_states.c.meter_id, meter_states.c.since)
    )
    found: dict[str, list[MeterState]] = {}
    for row in rows:
        found.setdefault(row.meter_id, []).append(
            MeterState(
                kind=row.kind,
                reason=row.reason,
                since=row.since,
                detail=row.detail,
                count=row.count,
                until=row.until,
            )
        )
    return found


async def learn_identity(store: ServiceStore, meter_id: str, identity: str) -> None:
    """Keep the serial number a meter answered with on first contact."""
    async with store.unit_of_work() as uow:
        await uow.session.execute(
            update(meters)
            .where(meters.c.id == meter_id, meters.c.identity.is_(None))
            .values(identity=identity)
        )
