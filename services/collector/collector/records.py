"""The collector's database work: bus configuration, link state, readings, commands, views.

Every change that others must hear about is emitted in the same unit of work.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from prepaid_common.contracts import (
    CommandRequestV1,
    CommandResultV1,
    MeterStatusV1,
    ReadingV1,
    RelayAction,
    RelayState,
)
from prepaid_common.errors import Conflict, Invalid, NotFound
from prepaid_common.outbox import ServiceStore, UnitOfWork
from pydantic import BaseModel, Field
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from collector.domain import DecodedReading, MeterLink, MeterProfile
from collector.tables import dtus, meters, pending_commands

ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"  # ids travel in routing keys: no dots


# --- the internal API's shapes -------------------------------------------------------------
class MeterRegistration(BaseModel):
    id: str = Field(pattern=ID_PATTERN)
    unit_id: int = Field(ge=1, le=247)
    profile: str = Field(min_length=1, max_length=64)


class DtuRegistration(BaseModel):
    id: str = Field(pattern=ID_PATTERN)
    name: str = Field(min_length=1, max_length=128)
    host: str = Field(min_length=1, max_length=255)
    port: int = Field(ge=1, le=65535)
    enabled: bool = True
    meters: list[MeterRegistration] = Field(default_factory=list, max_length=247)


class LastReading(BaseModel):
    read_at: datetime
    energy_kwh: Decimal
    power_kw: Decimal | None


class MeterView(BaseModel):
    id: str
    dtu_id: str
    unit_id: int
    profile: str
    online: bool
    dtu_online: bool
    relay: RelayState | None
    last_reading: LastReading | None


class DtuView(BaseModel):
    id: str
    name: str
    kind: str
    host: str
    port: int
    enabled: bool
    online: bool
    last_seen_at: datetime | None
    meter_ids: list[str]


# --- what a bus loop works from --------------------------------------------------------------
@dataclass(frozen=True)
class MeterConfig:
    id: str
    unit_id: int
    profile: str


@dataclass(frozen=True)
class BusConfig:
    dtu_id: str
    host: str
    port: int
    enabled: bool
    meters: tuple[MeterConfig, ...]


@dataclass(frozen=True)
class PendingCommand:
    command_id: str
    meter_id: str
    action: RelayAction
    envelope: str
    expires_at: datetime


@dataclass(frozen=True)
class CommandOutcome:
    succeeded: bool
    relay: RelayState | None = None
    error: str = ""


# --- registration and views ----------------------------------------------------------------
async def register_dtu(
    store: ServiceStore, body: DtuRegistration, profiles: Mapping[str, MeterProfile]
) -> bool:
    """Create or update a DTU and its meters; return True if the DTU is new."""
    _check_registration(body, profiles)
    settings = {"name": body.name, "host": body.host, "port": body.port, "enabled": body.enabled}
    try:
        # Lock order, here as in every unit of work: the DTU row, then its meters' rows.
        async with store.unit_of_work() as uow:
            session = uow.session
            current = (
                await session.execute(
                    select(dtus.c.name, dtus.c.host, dtus.c.port, dtus.c.enabled).where(
                        dtus.c.id == body.id
                    )
                )
            ).first()
            if current is None:
                await session.execute(
                    insert(dtus).values(
                        id=body.id, kind="modbus-tcp", online=False, last_seen_at=None, **settings
                    )
                )
            elif current._asdict() != settings:
                await session.execute(update(dtus).where(dtus.c.id == body.id).values(**settings))
            await _check_unit_ids_free(uow, body)
            for meter in body.meters:
                await _upsert_meter(uow, body.id, meter)
    except IntegrityError:
        raise Conflict(
            f"DTU {body.id}: the registration clashes with another meter's unit id "
            "or a concurrent registration; retry"
        ) from None
    return current is None


def _check_registration(body: DtuRegistration, profiles: Mapping[str, MeterProfile]) -> None:
    for meter in body.meters:
        if meter.profile not in profiles:
            raise Invalid(
                f"meter {meter.id}: unknown profile {meter.profile!r}; "
                f"known profiles: {', '.join(sorted(profiles))}"
            )
    for label, values in (
        ("meter id", [m.id for m in body.meters]),
        ("unit id", [str(m.unit_id) for m in body.meters]),
    ):
        duplicates = sorted({v for v in values if values.count(v) > 1})
        if duplicates:
            raise Invalid(f"DTU {body.id}: {label} repeated: {', '.join(duplicates)}")


async def _check_unit_ids_free(uow: UnitOfWork, body: DtuRegistration) -> None:
    clash = (
        await uow.session.execute(
            select(meters.c.id, meters.c.unit_id).where(
                meters.c.dtu_id == body.id,
                meters.c.unit_id.in_([m.unit_id for m in body.meters]),
                meters.c.id.not_in([m.id for m in body.meters]),
            )
        )
    ).first()
    if clash is not None:
        raise Conflict(f"DTU {body.id}: unit id {clash.unit_id} is already meter {clash.id}")


async def _upsert_meter(uow: UnitOfWork, dtu_id: str, meter: MeterRegistration) -> None:
    values = {"dtu_id": dtu_id, "unit_id": meter.unit_id, "profile": meter.profile}
    current = (
        await uow.session.execute(
            select(meters.c.dtu_id, meters.c.unit_id, meters.c.profile).where(
                meters.c.id == meter.id
            )
        )
    ).first()
    if current is None:
        await uow.session.execute(
            insert(meters).values(
                id=meter.id, online=False, relay=None, consecutive_failures=0, **values
            )
        )
    elif current._asdict() != values:
        await uow.session.execute(update(meters).where(meters.c.id == meter.id).values(**values))


def _meter_query() -> Any:
    return select(meters, dtus.c.online.label("dtu_online")).join(
        dtus, dtus.c.id == meters.c.dtu_id
    )


def _meter_view(row: Any) -> MeterView:
    last = None
    if row.last_read_at is not None and row.last_energy_kwh is not None:
        last = LastReading(
            read_at=row.last_read_at, energy_kwh=row.last_energy_kwh, power_kw=row.last_power_kw
        )
    return MeterView(
        id=row.id,
        dtu_id=row.dtu_id,
        unit_id=row.unit_id,
        profile=row.profile,
        online=row.online,
        dtu_online=row.dtu_online,
        relay=row.relay,
        last_reading=last,
    )


async def get_meter(store: ServiceStore, meter_id: str) -> MeterView:
    """Return one meter's view, or NotFound."""
    async with store.sessionmaker() as session:
        row = (await session.execute(_meter_query().where(meters.c.id == meter_id))).first()
    if row is None:
        raise NotFound(f"meter {meter_id} is not on this collector")
    return _meter_view(row)


async def list_meters(
    store: ServiceStore, *, limit: int, offset: int, ids: Collection[str] | None
) -> tuple[list[MeterView], int]:
    """Return a page of meters (ordered by id) and how many match in all."""
    query = _meter_query()
    count = select(func.count()).select_from(meters)
    if ids is not None:
        query = query.where(meters.c.id.in_(ids))
        count = count.where(meters.c.id.in_(ids))
    async with store.sessionmaker() as session:
        total = await session.scalar(count) or 0
        rows = await session.execute(query.order_by(meters.c.id).limit(limit).offset(offset))
        return [_meter_view(row) for row in rows], total


async def list_dtus(store: ServiceStore, dtu_id: str | None = None) -> list[DtuView]:
    """Return every DTU (or one), with its meters' ids."""
    query = select(dtus).order_by(dtus.c.id)
    if dtu_id is not None:
        query = query.where(dtus.c.id == dtu_id)
    async with store.sessionmaker() as session:
        rows = (await session.execute(query)).all()
        meter_rows = await session.execute(
            select(meters.c.id, meters.c.dtu_id).order_by(meters.c.unit_id)
        )
    by_dtu: dict[str, list[str]] = {}
    for meter_id, owner in meter_rows:
        by_dtu.setdefault(owner, []).append(meter_id)
    return [
        DtuView(
            id=row.id,
            name=row.name,
            kind=row.kind,
            host=row.host,
            port=row.port,
            enabled=row.enabled,
            online=row.online,
            last_seen_at=row.last_seen_at,
            meter_ids=by_dtu.get(row.id, []),
        )
        for row in rows
    ]


async def enabled_dtu_ids(store: ServiceStore) -> list[str]:
    """Return the DTUs this collector should be polling."""
    async with store.sessionmaker() as session:
        return list(await session.scalars(select(dtus.c.id).where(dtus.c.enabled)))


async def count_online(store: ServiceStore) -> tuple[int, int, int]:
    """Return (meters online, meters known, DTUs online) for the gauges."""
    async with store.sessionmaker() as session:
        online = await session.scalar(select(func.count()).where(meters.c.online)) or 0
        known = await session.scalar(select(func.count()).select_from(meters)) or 0
        dtus_online = await session.scalar(select(func.count()).where(dtus.c.online)) or 0
    return online, known, dtus_online


# --- what a bus loop records -----------------------------------------------------------------
async def load_bus(store: ServiceStore, dtu_id: str) -> BusConfig | None:
    """Return a DTU's connection settings and meters, or None if it is gone."""
    async with store.sessionmaker() as session:
        dtu = (await session.execute(select(dtus).where(dtus.c.id == dtu_id))).first()
        if dtu is None:
            return None
        rows = await session.execute(
            select(meters.c.id, meters.c.unit_id, meters.c.profile)
            .where(meters.c.dtu_id == dtu_id)
            .order_by(meters.c.unit_id)
        )
        return BusConfig(
            dtu_id=dtu.id,
            host=dtu.host,
            port=dtu.port,
            enabled=dtu.enabled,
            meters=tuple(MeterConfig(row.id, row.unit_id, row.profile) for row in rows),
        )


async def _meter_link(uow: UnitOfWork, meter_id: str) -> MeterLink | None:
    row = (
        await uow.session.execute(
            select(meters.c.online, meters.c.consecutive_failures).where(meters.c.id == meter_id)
        )
    ).first()
    return None if row is None else MeterLink(row.online, row.consecutive_failures)


async def record_reading(
    store: ServiceStore, *, dtu_id: str, meter_id: str, reading: DecodedReading, at: datetime
) -> bool:
    """Store a good poll and say the reading; return True if the meter came back online."""
    async with store.unit_of_work() as uow:
        # The DTU row first, as registration does: one lock order, no deadlock.
        await uow.session.execute(
            update(dtus).where(dtus.c.id == dtu_id).values(online=True, last_seen_at=at)
        )
        link = await _meter_link(uow, meter_id)
        if link is None:
            return False  # removed while it was being read
        new_link, came_online = link.after_success()
        await uow.session.execute(
            update(meters)
            .where(meters.c.id == meter_id)
            .values(
                online=new_link.online,
                consecutive_failures=new_link.consecutive_failures,
                relay=reading.relay,
                last_energy_kwh=reading.energy_kwh,
                last_power_kw=reading.power_kw,
                last_read_at=at,
            )
        )
        if came_online:
            await uow.emit(MeterStatusV1(meter_id=meter_id, dtu_id=dtu_id, online=True, at=at))
        await uow.emit(
            ReadingV1(
                meter_id=meter_id,
                dtu_id=dtu_id,
                read_at=at,
                energy_kwh=reading.energy_kwh,
                relay=reading.relay,
                power_kw=reading.power_kw,
            )
        )
    return came_online


async def record_failure(
    store: ServiceStore, *, dtu_id: str, meter_id: str, reason: str, at: datetime
) -> MeterLink | None:
    """Count a failed poll; say the meter is offline when the streak reaches the limit."""
    async with store.unit_of_work() as uow:
        link = await _meter_link(uow, meter_id)
        if link is None:
            return None
        new_link, went_offline = link.after_failure()
        await uow.session.execute(
            update(meters)
            .where(meters.c.id == meter_id)
            .values(online=new_link.online, consecutive_failures=new_link.consecutive_failures)
        )
        if went_offline:
            await uow.emit(
                MeterStatusV1(meter_id=meter_id, dtu_id=dtu_id, online=False, at=at, reason=reason)
            )
    return new_link


async def record_dtu_reachable(store: ServiceStore, *, dtu_id: str, at: datetime) -> None:
    """Mark the DTU online once its connection is open."""
    async with store.unit_of_work() as uow:
        await uow.session.execute(
            update(dtus).where(dtus.c.id == dtu_id).values(online=True, last_seen_at=at)
        )


async def record_dtu_lost(
    store: ServiceStore, *, dtu_id: str, reason: str, at: datetime
) -> list[str]:
    """Mark the DTU and its meters offline; say so for each meter not already announced."""
    announced: list[str] = []
    async with store.unit_of_work() as uow:
        await uow.session.execute(update(dtus).where(dtus.c.id == dtu_id).values(online=False))
        rows = await uow.session.execute(
            select(meters.c.id, meters.c.online, meters.c.consecutive_failures).where(
                meters.c.dtu_id == dtu_id
            )
        )
        for row in rows.all():
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


# --- commands --------------------------------------------------------------------------------
async def accept_command(uow: UnitOfWork, request: CommandRequestV1, *, at: datetime) -> bool:
    """Keep a command for one of our meters until it is executed; False if not ours/known."""
    ours = await uow.session.scalar(select(meters.c.id).where(meters.c.id == request.meter_id))
    if ours is None:
        return False
    known = await uow.session.scalar(
        select(pending_commands.c.command_id).where(
            pending_commands.c.command_id == request.command_id
        )
    )
    if known is not None:
        return False  # the same command sent again under a new message id
    await uow.session.execute(
        insert(pending_commands).values(
            command_id=request.command_id,
            meter_id=request.meter_id,
            action=request.action,
            envelope=request.envelope,
            expires_at=request.expires_at,
            received_at=at,
        )
    )
    return True


async def pending_for(store: ServiceStore, meter_ids: Sequence[str]) -> list[PendingCommand]:
    """Return the commands waiting for these meters, oldest first."""
    if not meter_ids:
        return []
    async with store.sessionmaker() as session:
        rows = await session.execute(
            select(pending_commands)
            .where(pending_commands.c.meter_id.in_(meter_ids))
            .order_by(pending_commands.c.received_at, pending_commands.c.command_id)
        )
        return [
            PendingCommand(
                command_id=row.command_id,
                meter_id=row.meter_id,
                action=row.action,
                envelope=row.envelope,
                expires_at=row.expires_at,
            )
            for row in rows
        ]


async def finish_command(
    store: ServiceStore, command: PendingCommand, outcome: CommandOutcome, *, at: datetime
) -> None:
    """Report a command's result, forget it, and keep the relay state the meter showed."""
    async with store.unit_of_work() as uow:
        await uow.session.execute(
            delete(pending_commands).where(pending_commands.c.command_id == command.command_id)
        )
        if outcome.relay is not None:
            await uow.session.execute(
                update(meters).where(meters.c.id == command.meter_id).values(relay=outcome.relay)
            )
        await uow.emit(
            CommandResultV1(
                command_id=command.command_id,
                meter_id=command.meter_id,
                succeeded=outcome.succeeded,
                relay=outcome.relay,
                error=outcome.error,
                at=at,
            )
        )
