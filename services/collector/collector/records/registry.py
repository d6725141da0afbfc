"""DTUs and meters as registered, and the views the API shows of them."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

from prepaid_common.contracts.api.collector import (
    DtuKind,
    DtuRegistration,
    DtuView,
    LastReading,
    MeterRegistration,
    MeterView,
)
from prepaid_common.errors import Conflict, NotFound
from prepaid_common.outbox import ServiceStore, UnitOfWork
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError

from collector.domain import Dlt645Profile, Profile
from collector.domain.registration import stored_address
from collector.tables import dtus, meters


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


async def last_read_at(store: ServiceStore, meter_id: str) -> datetime | None:
    """Return when the meter was last read, or None."""
    async with store.sessionmaker() as session:
        return await session.scalar(select(meters.c.last_read_at).where(meters.c.id == meter_id))
