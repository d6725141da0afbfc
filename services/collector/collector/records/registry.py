"""DTUs and meters as registered, and the views the API shows of them."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from prepaid_common.contracts.api.collector import (
    DIALLED_KINDS,
    DtuKind,
    DtuRegistration,
    DtuState,
    DtuView,
    LastReading,
    MeterRegistration,
    MeterState,
    MeterView,
)
from prepaid_common.errors import Conflict, NotFound
from prepaid_common.outbox import ServiceStore, UnitOfWork
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from collector.domain import Dlt645Profile, Profile
from collector.domain.detail import reading_detail_from_text
from collector.domain.registration import stored_address
from collector.domain.states import summary
from collector.records.states import states_of
from collector.tables import dtus, meter_moves, meter_states, meters, pending_commands


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
            await _check_meters_not_elsewhere(uow, body)
            await _check_not_registered_twice(uow, body)
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


async def _check_meters_not_elsewhere(uow: UnitOfWork, body: DtuRegistration) -> None:
    """Refuse meters another DTU holds: registering never moves a meter (see move_meter)."""
    if not body.meters:
        return
    held = (
        await uow.session.execute(
            select(meters.c.id, meters.c.dtu_id, meters.c.address)
            .where(meters.c.id.in_([m.id for m in body.meters]), meters.c.dtu_id != body.id)
            .order_by(meters.c.id)
        )
    ).all()
    if held:
        names = "; ".join(
            f"meter {row.id} is on DTU {row.dtu_id} at address {row.address}" for row in held
        )
        raise Conflict(
            f"DTU {body.id}: {names}. A registration never moves a meter: move it with "
            "POST /meters/{id}/move, or remove it from its DTU first"
        )


async def _check_not_registered_twice(uow: UnitOfWork, body: DtuRegistration) -> None:
    """Refuse a DTU that is one already registered under another id (same host and port)."""
    if body.kind not in DIALLED_KINDS or body.host is None or body.port is None:
        return
    twin = (
        await uow.session.execute(
            select(dtus.c.id, dtus.c.kind).where(
                dtus.c.host == body.host, dtus.c.port == body.port, dtus.c.id != body.id
            )
        )
    ).first()
    if twin is not None:
        raise Conflict(
            f"DTU {body.id}: {body.host}:{body.port} is DTU {twin.id} ({twin.kind}) already; "
            "one physical DTU is registered once"
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
        raise Conflict(
            f"DTU {body.id}: address {clash.address} is already meter {clash.id} "
            f"(DTU {body.id}, address {clash.address})"
        )
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
            select(
                meters.c.dtu_id,
                meters.c.address,
                meters.c.unit_id,
                meters.c.profile,
                meters.c.identity,
            ).where(meters.c.id == meter.id)
        )
    ).first()
    if current is None:
        await uow.session.execute(
            insert(meters).values(
                id=meter.id,
                online=False,
                relay=None,
                consecutive_failures=0,
                enabled=True,
                identity=meter.identity,
                **values,
            )
        )
        return {dtu_id}
    changed = {name: value for name, value in values.items() if getattr(current, name) != value}
    if meter.identity is not None and meter.identity != current.identity:
        changed["identity"] = meter.identity  # an installer's correction
    if changed:
        await uow.session.execute(update(meters).where(meters.c.id == meter.id).values(**changed))
        return {dtu_id, current.dtu_id}
    return set()


def _meter_query() -> Any:
    return select(meters, dtus.c.online.label("dtu_online")).join(
        dtus, dtus.c.id == meters.c.dtu_id
    )


def _meter_view(row: Any, states: list[MeterState]) -> MeterView:
    last = None
    if row.last_read_at is not None and row.last_energy_kwh is not None:
        detail = reading_detail_from_text(row.last_detail)
        last = LastReading(
            read_at=row.last_read_at,
            energy_kwh=row.last_energy_kwh,
            power_kw=row.last_power_kw,
            relay=row.relay,
            **detail,
        )
    return MeterView(
        id=row.id,
        dtu_id=row.dtu_id,
        unit_id=row.unit_id,
        address=row.address,
        profile=row.profile,
        enabled=row.enabled,
        online=row.online,
        dtu_online=row.dtu_online,
        relay=row.relay,
        state=summary(row.enabled, (state.reason for state in states)),
        states=states,
        identity=row.identity,
        last_reading=last,
    )


async def get_meter(store: ServiceStore, meter_id: str) -> MeterView:
    """Return one meter's view, or NotFound."""
    async with store.sessionmaker() as session:
        row = (await session.execute(_meter_query().where(meters.c.id == meter_id))).first()
        if row is None:
            raise NotFound(f"meter {meter_id} is not on this collector")
        states = await states_of(session, [meter_id])
    return _meter_view(row, states.get(meter_id, []))


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
        rows = (
            await session.execute(query.order_by(meters.c.id).limit(limit).offset(offset))
        ).all()
        states = await states_of(session, [row.id for row in rows])
        return [_meter_view(row, states.get(row.id, [])) for row in rows], total


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
    return [_dtu_view(row, by_dtu.get(row.id, [])) for row in rows]


def _dtu_view(row: Any, meter_ids: list[str]) -> DtuView:
    dial_in = row.kind not in DIALLED_KINDS
    if not row.enabled:
        link = DtuState(state="disabled", reason=None, since=None)
    elif row.online:
        link = DtuState(state="online", reason=None, since=row.state_since)
    elif row.state_reason is not None:
        link = DtuState(
            state="offline",
            reason=row.state_reason,
            since=row.state_since,
            next_attempt_at=None if dial_in else row.next_attempt_at,
        )
    else:
        link = DtuState(state="unknown", reason="not reached yet", since=None)
    return DtuView(
        id=row.id,
        name=row.name,
        kind=row.kind,
        host=row.host or None,
        port=row.port or None,
        # The dial-in settings mean nothing for a DTU the collector dials.
        registration=row.registration if dial_in else None,
        registration_mode=row.registration_mode if dial_in else None,
        heartbeat=row.heartbeat if dial_in else None,
        link_timeout_seconds=row.link_timeout_seconds if dial_in else None,
        enabled=row.enabled,
        online=row.online,
        last_seen_at=row.last_seen_at,
        link=link,
        meter_ids=meter_ids,
    )


async def enabled_dtus(store: ServiceStore) -> dict[str, tuple[DtuKind, int]]:
    """Return every enabled DTU's kind and settings revision."""
    async with store.sessionmaker() as session:
        rows = await session.execute(
            select(dtus.c.id, dtus.c.kind, dtus.c.revision).where(dtus.c.enabled)
        )
        return {row.id: (row.kind, row.revision) for row in rows}


async def dial_in_registrations(store: ServiceStore) -> dict[bytes, str]:
    """Return each enabled dial-in DTU's registration packet and id."""
    async with store.sessionmaker() as session:
        rows = await session.execute(
            select(dtus.c.id, dtus.c.registration).where(
                dtus.c.enabled, dtus.c.kind == "dtu-client", dtus.c.registration.is_not(None)
            )
        )
        return {row.registration.encode("ascii"): row.id for row in rows}


async def set_dtu_enabled(store: ServiceStore, dtu_id: str, enabled: bool) -> None:
    """Turn a DTU's polling on or off (its loop stops or starts within a poll interval)."""
    async with store.unit_of_work() as uow:
        if await uow.session.scalar(select(dtus.c.id).where(dtus.c.id == dtu_id)) is None:
            raise NotFound(f"DTU {dtu_id} is not on this collector")
        await uow.session.execute(
            update(dtus)
            .where(dtus.c.id == dtu_id)
            .values(enabled=enabled, revision=dtus.c.revision + 1)
        )


async def set_meter_enabled(store: ServiceStore, meter_id: str, enabled: bool) -> str:
    """Turn a meter's polling on or off; return its DTU's id."""
    async with store.unit_of_work() as uow:
        dtu_id = await uow.session.scalar(select(meters.c.dtu_id).where(meters.c.id == meter_id))
        if dtu_id is None:
            raise NotFound(f"meter {meter_id} is not on this collector")
        await uow.session.execute(
            update(meters).where(meters.c.id == meter_id).values(enabled=enabled)
        )
        if not enabled:
            await uow.session.execute(
                delete(meter_states).where(meter_states.c.meter_id == meter_id)
            )
        await _bump(uow, [dtu_id])
    return str(dtu_id)


async def meter_ids_of_dtu(store: ServiceStore, dtu_id: str) -> list[str]:
    """Return a DTU's meters' ids; NotFound if there is no such DTU."""
    async with store.sessionmaker() as session:
        if await session.scalar(select(dtus.c.id).where(dtus.c.id == dtu_id)) is None:
            raise NotFound(f"DTU {dtu_id} is not on this collector")
        rows = await session.execute(
            select(meters.c.id).where(meters.c.dtu_id == dtu_id).order_by(meters.c.id)
        )
        return [row.id for row in rows]


async def remove_meters(store: ServiceStore, meter_ids: Collection[str]) -> None:
    """Remove meters and what is kept of them (states, commands waiting)."""
    async with store.unit_of_work() as uow:
        owners = (
            (
                await uow.session.execute(
                    select(meters.c.dtu_id).where(meters.c.id.in_(list(meter_ids))).distinct()
                )
            )
            .scalars()
            .all()
        )
        await _bump(uow, owners)
        await uow.session.execute(
            delete(meter_states).where(meter_states.c.meter_id.in_(list(meter_ids)))
        )
        await uow.session.execute(
            delete(pending_commands).where(pending_commands.c.meter_id.in_(list(meter_ids)))
        )
        await uow.session.execute(delete(meters).where(meters.c.id.in_(list(meter_ids))))


async def remove_dtu(store: ServiceStore, dtu_id: str) -> list[str]:
    """Remove a DTU and its meters; return the meters' ids."""
    meter_ids = await meter_ids_of_dtu(store, dtu_id)
    if meter_ids:
        await remove_meters(store, meter_ids)
    async with store.unit_of_work() as uow:
        await uow.session.execute(delete(dtus).where(dtus.c.id == dtu_id))
    return meter_ids


async def move_meter(
    store: ServiceStore,
    *,
    meter_id: str,
    to_dtu_id: str,
    address: str,
    profile: str,
    profile_is_dlt645: bool,
    final: tuple[datetime, Decimal] | None,
    reason: str,
    at: datetime,
) -> tuple[str, str, str]:
    """Move a meter to another place, keeping the move; return (DTU, address, profile) it left.

    Its states end (they were of the old place); its identity stays (the same meter) unless
    its profile changes (another register may tell another number).
    """
    try:
        async with store.unit_of_work() as uow:
            session = uow.session
            current = (
                await session.execute(
                    select(meters.c.dtu_id, meters.c.address, meters.c.profile).where(
                        meters.c.id == meter_id
                    )
                )
            ).first()
            if current is None:
                raise NotFound(f"meter {meter_id} is not on this collector")
            holder = (
                await session.execute(
                    select(meters.c.id).where(
                        meters.c.dtu_id == to_dtu_id,
                        meters.c.address == address,
                        meters.c.id != meter_id,
                    )
                )
            ).first()
            if holder is not None:
                raise Conflict(
                    f"meter {meter_id}: address {address} on DTU {to_dtu_id} is meter "
                    f"{holder.id}'s (DTU {to_dtu_id}, address {address})"
                )
            values: dict[str, Any] = {
                "dtu_id": to_dtu_id,
                "address": address,
                "unit_id": None if profile_is_dlt645 else int(address),
                "profile": profile,
                "online": False,
                "consecutive_failures": 0,
            }
            if profile != current.profile:
                values["identity"] = None
            await session.execute(update(meters).where(meters.c.id == meter_id).values(**values))
            await session.execute(delete(meter_states).where(meter_states.c.meter_id == meter_id))
            await session.execute(
                insert(meter_moves).values(
                    meter_id=meter_id,
                    from_dtu_id=current.dtu_id,
                    from_address=current.address,
                    from_profile=current.profile,
                    to_dtu_id=to_dtu_id,
                    to_address=address,
                    to_profile=profile,
                    final_read_at=None if final is None else final[0],
                    final_kwh=None if final is None else final[1],
                    reason=reason[:400],
                    at=at,
                )
            )
            await _bump(uow, {current.dtu_id, to_dtu_id})
    except IntegrityError:
        raise Conflict(f"meter {meter_id}: moved concurrently; retry") from None
    return current.dtu_id, current.address, current.profile


async def dtu_kind(store: ServiceStore, dtu_id: str) -> str:
    """Return a DTU's kind; NotFound if there is none."""
    async with store.sessionmaker() as session:
        kind = await session.scalar(select(dtus.c.kind).where(dtus.c.id == dtu_id))
    if kind is None:
        raise NotFound(f"DTU {dtu_id} is not on this collector")
    return str(kind)


async def _bump(uow: UnitOfWork, dtu_ids: Collection[str]) -> None:
    """Make every replica's loop for these DTUs reload (see enabled_dtus)."""
    if dtu_ids:
        await uow.session.execute(
            update(dtus).where(dtus.c.id.in_(sorted(dtu_ids))).values(revision=dtus.c.revision + 1)
        )


async def count_online(store: ServiceStore) -> tuple[int, int, int]:
    """Return (meters online, meters known, DTUs online) for the gauges."""
    async with store.sessionmaker() as session:
        online = await session.scalar(select(func.count()).where(meters.c.online)) or 0
        known = await session.scalar(select(func.count()).select_from(meters)) or 0
        dtus_online = await session.scalar(select(func.count()).where(dtus.c.online)) or 0
    return online, known, dtus_online


async def last_read_at(store: ServiceStore, meter_id: str) -> datetime | None:
    """Return when the meter was last read, or None."""
    async with store.sessionmaker() as session:
        return await session.scalar(select(meters.c.last_read_at).where(meters.c.id == meter_id))
