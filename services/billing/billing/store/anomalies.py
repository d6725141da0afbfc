"""Anomalies: what billing tells an operator about (recorded, and announced on the bus)."""

from __future__ import annotations

from datetime import datetime

from prepaid_common.contracts import AnomalyV1, utcnow
from prepaid_common.contracts.api.billing import Anomaly, Window
from prepaid_common.outbox import UnitOfWork
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.tables import anomalies


async def record_anomaly(uow: UnitOfWork, meter_id: str, kind: str, detail: str) -> None:
    """Record an anomaly and announce it, in the unit of work's transaction."""
    now = utcnow()
    await uow.session.execute(
        insert(anomalies).values(meter_id=meter_id, kind=kind, detail=detail[:400], at=now)
    )
    await uow.emit(AnomalyV1(meter_id=meter_id, kind=kind, detail=detail, at=now))


async def keep_anomaly(
    session: AsyncSession, *, meter_id: str, kind: str, detail: str, at: datetime
) -> None:
    """Keep another service's anomaly (a refused command, a relay that disagrees, a clock)
    on the operators' list, without announcing it again."""
    await session.execute(
        insert(anomalies).values(meter_id=meter_id, kind=kind[:32], detail=detail[:400], at=at)
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
