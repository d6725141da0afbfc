"""What a DTU's bus loop works from (its settings and meters) and what it records of its link."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from prepaid_common.contracts import (
    AnomalyV1,
    MeterStatusV1,
)
from prepaid_common.contracts.api.collector import (
    DtuKind,
    RegistrationMode,
)
from prepaid_common.outbox import ServiceStore
from sqlalchemy import select, update

from collector.domain import MeterLink
from collector.domain.states import LINK
from collector.records.states import note_state
from collector.tables import dtus, meters


@dataclass(frozen=True)
class MeterConfig:
    id: str
    address: str
    profile: str
    # The serial number it must answer with; None: not known yet (taken on first contact).
    identity: str | None = None

    @property
    def unit_id(self) -> int:
        """The Modbus unit id (Modbus meters only)."""
        return int(self.address)


@dataclass(frozen=True)
class BusConfig:
    dtu_id: str
    kind: DtuKind
    host: str | None
    port: int | None
    enabled: bool
    meters: tuple[MeterConfig, ...]
    registration: str | None = None
    registration_mode: RegistrationMode = "once"
    heartbeat: str = "HB"
    link_timeout_seconds: float = 180.0


async def load_bus(store: ServiceStore, dtu_id: str) -> BusConfig | None:
    """Return a DTU's connection settings and meters, or None if it is gone."""
    async with store.sessionmaker() as session:
        dtu = (await session.execute(select(dtus).where(dtus.c.id == dtu_id))).first()
        if dtu is None:
            return None
        rows = await session.execute(
            select(meters.c.id, meters.c.address, meters.c.profile, meters.c.identity)
            .where(meters.c.dtu_id == dtu_id, meters.c.enabled)
            .order_by(meters.c.address)
        )
        return BusConfig(
            dtu_id=dtu.id,
            kind=dtu.kind,
            host=dtu.host or None,
            port=dtu.port or None,
            enabled=dtu.enabled,
            meters=tuple(
                MeterConfig(row.id, row.address, row.profile, row.identity) for row in rows
            ),
            registration=dtu.registration,
            registration_mode=dtu.registration_mode,
            heartbeat=dtu.heartbeat,
            link_timeout_seconds=dtu.link_timeout_seconds,
        )


async def record_dtu_reachable(store: ServiceStore, *, dtu_id: str, at: datetime) -> None:
    """Mark the DTU online (since now) once its connection is open."""
    async with store.unit_of_work() as uow:
        await uow.session.execute(
            update(dtus)
            .where(dtus.c.id == dtu_id)
            .values(
                online=True,
                last_seen_at=at,
                state_reason=None,
                state_since=at,
                next_attempt_at=None,
            )
        )


async def record_dtu_lost(
    store: ServiceStore,
    *,
    dtu_id: str,
    reason: str,
    at: datetime,
    next_attempt_at: datetime | None = None,
) -> list[str]:
    """Mark the DTU and its meters offline, with why; say so for each meter not already
    announced. The outage's start is kept across the failed attempts that follow it."""
    announced: list[str] = []
    async with store.unit_of_work() as uow:
        current = (
            await uow.session.execute(
                select(dtus.c.online, dtus.c.state_reason).where(dtus.c.id == dtu_id)
            )
        ).first()
        values: dict[str, object] = {
            "online": False,
            "state_reason": reason[:400],
            "next_attempt_at": next_attempt_at,
        }
        if current is None or current.online or current.state_reason is None:
            values["state_since"] = at
        await uow.session.execute(update(dtus).where(dtus.c.id == dtu_id).values(**values))
        rows = await uow.session.execute(
            select(meters.c.id, meters.c.online, meters.c.consecutive_failures).where(
                meters.c.dtu_id == dtu_id, meters.c.enabled
            )
        )
        for row in rows.all():
            await note_state(
                uow,
                meter_id=row.id,
                kind=LINK,
                reason="dtu_offline",
                detail=f"DTU {dtu_id} offline: {reason}",
                at=at,
                until=next_attempt_at,
            )
            new_link, news = MeterLink(row.online, row.consecutive_failures).after_dtu_lost()
            if new_link == MeterLink(row.online, row.consecutive_failures):
                continue
            await uow.session.execute(
                update(meters)
                .where(meters.c.id == row.id)
                .values(online=False, consecutive_failures=new_link.consecutive_failures)
            )
            if news:
                announced.append(row.id)
                await uow.emit(
                    MeterStatusV1(
                        meter_id=row.id,
                        dtu_id=dtu_id,
                        online=False,
                        at=at,
                        reason=f"DTU offline: {reason}",
                    )
                )
    return announced


async def record_clock_anomaly(
    store: ServiceStore, *, meter_id: str, detail: str, at: datetime
) -> None:
    """Say that a meter's clock is beyond what a set may correct."""
    async with store.unit_of_work() as uow:
        await uow.emit(AnomalyV1(meter_id=meter_id, kind="clock", detail=detail, at=at))


async def record_security_event(
    store: ServiceStore, *, meter_id: str, detail: str, at: datetime
) -> None:
    """Say that a command was refused as forged, altered, replayed, expired or misdirected."""
    async with store.unit_of_work() as uow:
        await uow.emit(AnomalyV1(meter_id=meter_id, kind="command_refused", detail=detail, at=at))


async def dtu_kind_of_meter(store: ServiceStore, meter_id: str) -> tuple[str, str] | None:
    """Return (DTU id, DTU kind) of a meter, or None if unknown."""
    async with store.sessionmaker() as session:
        row = (
            await session.execute(
                select(dtus.c.id, dtus.c.kind)
                .join(meters, meters.c.dtu_id == dtus.c.id)
                .where(meters.c.id == meter_id)
            )
        ).first()
        return None if row is None else (row.id, row.kind)
