"""Anomalies: what billing tells an operator about (recorded, and announced on the bus)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from prepaid_common.contracts import AnomalyV1, utcnow
from prepaid_common.contracts.api.billing import Anomaly, Window
from prepaid_common.outbox import UnitOfWork
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from billing import bulk
from billing.tables import anomalies


async def record_anomaly(uow: UnitOfWork, meter_id: str, kind: str, detail: str) -> None:
    """Record an anomaly that its caller already reports once per occurrence worth telling
    (a purchase refused, a credit mismatch), and announce it, in the unit of work's
    transaction: an episode of one, ended when it is recorded."""
    now = utcnow()
    await uow.session.execute(
        insert(anomalies).values(
            meter_id=meter_id, kind=kind, detail=detail[:400], at=now, last_at=now, ended_at=now
        )
    )
    await uow.emit(AnomalyV1(meter_id=meter_id, kind=kind, detail=detail, at=now))


async def record_reading_anomaly(uow: UnitOfWork, meter_id: str, kind: str, detail: str) -> None:
    """Count a reading refused by rating (register backwards, implausible jump, before the
    start) in its episode: the first opens the episode and is announced; each later one of
    the same kind, until a reading of the meter is accepted again, adds to its count and
    leaves its detail as the latest. A meter that reads another device sends one such
    reading per poll: operators and notifications hear of it once, not 300 times."""
    now = utcnow()
    session = uow.session
    episode = await session.scalar(
        select(anomalies.c.id)
        .where(
            anomalies.c.meter_id == meter_id,
            anomalies.c.kind == kind,
            anomalies.c.ended_at.is_(None),
        )
        .order_by(anomalies.c.id.desc())
        .limit(1)
    )
    if episode is not None:
        await session.execute(
            update(anomalies)
            .where(anomalies.c.id == episode)
            .values(count=anomalies.c.count + 1, last_at=now, detail=detail[:400])
        )
        return
    await session.execute(
        insert(anomalies).values(
            meter_id=meter_id, kind=kind, detail=detail[:400], at=now, last_at=now
        )
    )
    await uow.emit(AnomalyV1(meter_id=meter_id, kind=kind, detail=detail, at=now))


async def end_reading_episodes(
    session: AsyncSession, meter_ids: Collection[str], kinds: Collection[str]
) -> None:
    """End the open episodes of ``kinds`` of meters whose reading was just accepted (one
    statement per batch, over the partial index of open episodes).

    The meters go as one array (``= ANY``), not as an IN list: a batch names up to a
    thousand meters, and an IN list is one parameter each, a statement text per batch size
    for the driver to render and the server to parse and plan: several times the cost.
    """
    if not meter_ids:
        return
    await session.execute(
        update(anomalies)
        .where(
            anomalies.c.ended_at.is_(None),
            bulk.one_of(session, anomalies.c.meter_id, sorted(meter_ids)),
            anomalies.c.kind.in_(sorted(kinds)),
        )
        .values(ended_at=utcnow())
    )


async def keep_anomaly(
    session: AsyncSession, *, meter_id: str, kind: str, detail: str, at: datetime
) -> None:
    """Keep another service's anomaly (a refused command, a relay that disagrees, a clock)
    on the operators' list, without announcing it again. That service tells each episode
    once; it is kept as an episode of one."""
    await session.execute(
        insert(anomalies).values(
            meter_id=meter_id, kind=kind[:32], detail=detail[:400], at=at, last_at=at, ended_at=at
        )
    )


async def anomaly_window(
    session: AsyncSession, *, meter_id: str | None, kind: str | None, limit: int, offset: int
) -> Window[Anomaly]:
    """Return anomalies, newest first, optionally of one meter or one kind."""
    query = select(anomalies).order_by(anomalies.c.id.desc()).limit(limit).offset(offset)
    if meter_id is not None:
        query = query.where(anomalies.c.meter_id == meter_id)
    if kind is not None:
        query = query.where(anomalies.c.kind == kind)
    rows = (await session.execute(query)).all()
    return Window[Anomaly](
        items=[Anomaly.model_validate(row._mapping) for row in rows], limit=limit, offset=offset
    )
