"""The collector's database work: bus configuration, link state, readings, commands, views.

Every change that others must hear about is emitted in the same unit of work.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from prepaid_common.contracts import (
    AnomalyV1,
    CommandAction,
    CommandRequestV1,
    CommandResultV1,
    MeterStatusV1,
    RelayState,
)
from prepaid_common.contracts.api.collector import (
    DtuKind,
    DtuRegistration,
    DtuView,
    LastReading,
    MeterRegistration,
    MeterView,
    RegistrationMode,
)
from prepaid_common.errors import Conflict, NotFound
from prepaid_common.outbox import ServiceStore, UnitOfWork
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from collector.domain import Dlt645Profile, MeterLink, Profile
from collector.domain.registration import stored_address
from collector.tables import dtus, meters, pending_commands, read_requests, replicas


# --- what a bus loop works from --------------------------------------------------------------
@dataclass(frozen=True)
class MeterConfig:
    id: str
    address: str
    profile: str

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


@dataclass(frozen=True)
class CommandOutcome:
    succeeded: bool
    relay: RelayState | None = None
    error: str = ""
    retryable: bool = True


# --- registration and views ----------------------------------------------------------------
async def register_dtu(
    store: ServiceStore, body: DtuRegistration, profiles: Mapping[str, Profile]
) -> bool:
    """Create or update a DTU and its meters (checked: domain.registration); True if new."""
    settings = body.model_dump(include=set(_DTU_SETTINGS))
    settings["host"], settings["port"] = body.host or "", body.port or 0  # dial-in: none
    try:
        # Lock order, here as in every unit of work: the DTU row, then its meters' rows.
        async with store.unit_of_work() as uow:
            session = uow.session
            current = (
                await session.execute(
                    select(*(dtus.c[name] for name in _DTU_SETTINGS)).where(dtus.c.id == body.id)
                )
            ).first()
            if current is None:
                await session.execute(
                    insert(dtus).values(id=body.id, online=False, last_seen_at=None, **settings)
                )
            elif current._asdict() != settings:
                await session.execute(update(dtus).where(dtus.c.id == body.id).values(**settings))
            await _check_addresses_free(uow, body, profiles)
            changed = {body.id} if current is None or current._asdict() != settings else set()
            for meter in body.meters:
                changed |= await _upsert_meter(uow, body.id, meter, profiles[meter.profile])
            if changed:
                # Every replica's loop for these DTUs reloads (see enabled_dtus).
                await session.execute(
                    update(dtus)
                    .where(dtus.c.id.in_(sorted(changed)))
                    .values(revision=dtus.c.revision + 1)
                )
    except IntegrityError:
        raise Conflict(
            f"DTU {body.id}: the registration clashes with another meter's address, "
            "another DTU's registration packet, or a concurrent registration; retry"
        ) from None
    return current is None


_DTU_SETTINGS = (
    "name",
    "kind",
    "host",
    "port",
    "enabled",
    "registration",
    "registration_mode",
    "heartbeat",
    "link_timeout_seconds",
)


async def _check_addresses_free(
    uow: UnitOfWork, body: DtuRegistration, profiles: Mapping[str, Profile]
) -> None:
    clash = (
        await uow.session.execute(
            select(meters.c.id, meters.c.address).where(
                meters.c.dtu_id == body.id,
                meters.c.address.in_([stored_address(m, profiles[m.profile]) for m in body.meters]),
                meters.c.id.not_in([m.id for m in body.meters]),
            )
        )
    ).first()
    if clash is not None:
        raise Conflict(f"DTU {body.id}: address {clash.address} is already meter {clash.id}")
    if body.registration is not None:
        taken = await uow.session.scalar(
            select(dtus.c.id).where(dtus.c.registration == body.registration, dtus.c.id != body.id)
        )
        if taken is not None:
            raise Conflict(f"DTU {body.id}: registration packet is already DTU {taken}'s")


async def _upsert_meter(
    uow: UnitOfWork, dtu_id: str, meter: MeterRegistration, profile: Profile
) -> set[str]:
    """Insert or update one meter; return the DTUs whose meter list this changed."""
    # A Modbus address is kept as its unit id's digits ("7", never "007").
    address = stored_address(meter, profile)
    unit_id = None if isinstance(profile, Dlt645Profile) else int(address)
    values = {"dtu_id": dtu_id, "address": address, "unit_id": unit_id, "profile": meter.profile}
    current = (
        await uow.session.execute(
            select(meters.c.dtu_id, meters.c.address, meters.c.unit_id, meters.c.profile).where(
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
        return {dtu_id}
    if current._asdict() != values:
        await uow.session.execute(update(meters).where(meters.c.id == meter.id).values(**values))
        return {dtu_id, current.dtu_id}
    return set()


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
        address=row.address,
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
            select(meters.c.id, meters.c.dtu_id).order_by(meters.c.address)
        )
    by_dtu: dict[str, list[str]] = {}
    for meter_id, owner in meter_rows:
        by_dtu.setdefault(owner, []).append(meter_id)
    return [
        DtuView(
            id=row.id,
            name=row.name,
            kind=row.kind,
            host=row.host or None,
            port=row.port or None,
            registration=row.registration,
            registration_mode=row.registration_mode,
            heartbeat=row.heartbeat,
            link_timeout_seconds=row.link_timeout_seconds,
            enabled=row.enabled,
            online=row.online,
            last_seen_at=row.last_seen_at,
            meter_ids=by_dtu.get(row.id, []),
        )
        for row in rows
    ]


async def enabled_dtus(store: ServiceStore) -> dict[str, tuple[DtuKind, int]]:
    """Return every enabled DTU's kind and settings revision."""
    async with store.sessionmaker() as session:
        rows = await session.execute(
            select(dtus.c.id, dtus.c.kind, dtus.c.revision).where(dtus.c.enabled)
        )
        return {row.id: (row.kind, row.revision) for row in rows}


async def meters_with_commands(store: ServiceStore) -> set[str]:
    """Return the meters that have commands waiting (any replica may have accepted them)."""
    async with store.sessionmaker() as session:
        rows = await session.execute(select(pending_commands.c.meter_id).distinct())
        return {row.meter_id for row in rows}


async def dial_in_registrations(store: ServiceStore) -> dict[bytes, str]:
    """Return each enabled dial-in DTU's registration packet and id."""
    async with store.sessionmaker() as session:
        rows = await session.execute(
            select(dtus.c.id, dtus.c.registration).where(
                dtus.c.enabled, dtus.c.kind == "dtu-client", dtus.c.registration.is_not(None)
            )
        )
        return {row.registration.encode("ascii"): row.id for row in rows}


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
            select(meters.c.id, meters.c.address, meters.c.profile)
            .where(meters.c.dtu_id == dtu_id)
            .order_by(meters.c.address)
        )
        return BusConfig(
            dtu_id=dtu.id,
            kind=dtu.kind,
            host=dtu.host or None,
            port=dtu.port or None,
            enabled=dtu.enabled,
            meters=tuple(MeterConfig(row.id, row.address, row.profile) for row in rows),
            registration=dtu.registration,
            registration_mode=dtu.registration_mode,
            heartbeat=dtu.heartbeat,
            link_timeout_seconds=dtu.link_timeout_seconds,
        )


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
            amount=request.amount,
            purchase_count=request.purchase_count,
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


async def record_clock_anomaly(
    store: ServiceStore, *, meter_id: str, detail: str, at: datetime
) -> None:
    """Say that a meter's clock is beyond what a set may correct."""
    async with store.unit_of_work() as uow:
        await uow.emit(AnomalyV1(meter_id=meter_id, kind="clock", detail=detail, at=at))


# --- replicas and read requests ----------------------------------------------------------------
async def renew_lease(
    store: ServiceStore, *, instance: str, now: datetime, lease_seconds: float
) -> list[str]:
    """Renew this replica's lease and return every replica whose lease is current."""
    until = now + timedelta(seconds=lease_seconds)
    async with store.unit_of_work() as uow:
        renewed = await uow.session.execute(
            update(replicas).where(replicas.c.instance == instance).values(lease_until=until)
        )
        if not renewed.rowcount:  # type: ignore[attr-defined]
            await uow.session.execute(
                insert(replicas).values(instance=instance, lease_until=until, started_at=now)
            )
        live = await uow.session.scalars(
            select(replicas.c.instance)
            .where(replicas.c.lease_until > now)
            .order_by(replicas.c.instance)
        )
        return list(live)


async def give_up_lease(store: ServiceStore, *, instance: str) -> None:
    """Leave the membership at once (a clean stop), so others take over without waiting."""
    async with store.unit_of_work() as uow:
        await uow.session.execute(delete(replicas).where(replicas.c.instance == instance))


async def request_reads(store: ServiceStore, *, meter_id: str | None, at: datetime) -> int:
    """Ask whichever replica owns it to read a meter (None: every meter) now."""
    async with store.unit_of_work() as uow:
        result = await uow.session.execute(
            insert(read_requests).values(meter_id=meter_id, requested_at=at)
        )
        return int(result.inserted_primary_key[0])  # type: ignore[attr-defined]


async def read_requests_after(
    store: ServiceStore, after_id: int, *, forget_before: datetime
) -> list[tuple[int, str | None]]:
    """Return read requests newer than ``after_id`` and forget ones older than a bound."""
    async with store.unit_of_work() as uow:
        await uow.session.execute(
            delete(read_requests).where(read_requests.c.requested_at < forget_before)
        )
        rows = await uow.session.execute(
            select(read_requests.c.id, read_requests.c.meter_id)
            .where(read_requests.c.id > after_id)
            .order_by(read_requests.c.id)
        )
        return [(row.id, row.meter_id) for row in rows]


async def last_read_request_id(store: ServiceStore) -> int:
    """Return the newest read request's id (0 if none)."""
    async with store.sessionmaker() as session:
        return int(await session.scalar(select(func.max(read_requests.c.id))) or 0)


async def last_read_at(store: ServiceStore, meter_id: str) -> datetime | None:
    """Return when the meter was last read, or None."""
    async with store.sessionmaker() as session:
        return await session.scalar(select(meters.c.last_read_at).where(meters.c.id == meter_id))


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
