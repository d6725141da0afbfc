"""A bulk import's statements: what exists of the DTUs and meters it names, inserting the
new ones set-at-a-time, and removing them again when the rest of the import failed."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from collector.tables import dtus, meters, pending_commands

# Ids per IN (...) list: well under SQLite's limit on bound parameters.
_CHUNK = 500


def _chunks(values: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


@dataclass(frozen=True)
class KnownDtu:
    """A registered DTU as an import compares it."""

    id: str
    name: str
    kind: str
    host: str | None
    port: int | None
    registration: str | None


@dataclass(frozen=True)
class KnownMeter:
    """A registered meter: where it is."""

    id: str
    dtu_id: str
    address: str
    profile: str


@dataclass
class Existing:
    """What the collector holds of the DTUs and meters an import names."""

    dtus: dict[str, KnownDtu]
    meters: dict[str, KnownMeter]
    # (DTU, stored address) -> meter id, for every meter on the DTUs the import names.
    addresses: dict[tuple[str, str], str]
    # Meters on each DTU the import names.
    meters_on: dict[str, int]
    registrations: dict[str, str]


async def existing(
    session: AsyncSession, dtu_ids: Sequence[str], meter_ids: Sequence[str]
) -> Existing:
    """Return what exists of the DTUs and meters named (a few queries whatever the count)."""
    known = Existing(dtus={}, meters={}, addresses={}, meters_on={}, registrations={})
    for chunk in _chunks(dtu_ids):
        for row in await session.execute(select(dtus).where(dtus.c.id.in_(chunk))):
            known.dtus[row.id] = KnownDtu(
                id=row.id,
                name=row.name,
                kind=row.kind,
                host=row.host or None,
                port=row.port or None,
                registration=row.registration,
            )
        rows = await session.execute(
            select(meters.c.id, meters.c.dtu_id, meters.c.address).where(meters.c.dtu_id.in_(chunk))
        )
        for meter_id, dtu_id, address in rows:
            known.addresses[(dtu_id, address)] = meter_id
            known.meters_on[dtu_id] = known.meters_on.get(dtu_id, 0) + 1
    for chunk in _chunks(meter_ids):
        rows = await session.execute(
            select(meters.c.id, meters.c.dtu_id, meters.c.address, meters.c.profile).where(
                meters.c.id.in_(chunk)
            )
        )
        for row in rows:
            known.meters[row.id] = KnownMeter(row.id, row.dtu_id, row.address, row.profile)
    registered = await session.execute(
        select(dtus.c.registration, dtus.c.id).where(dtus.c.registration.is_not(None))
    )
    known.registrations = {row[0]: row[1] for row in registered}
    return known


async def insert_new(
    session: AsyncSession, new_dtus: list[dict[str, Any]], new_meters: list[dict[str, Any]]
) -> None:
    """Insert DTUs and meters (one executemany each) and make every replica reload the
    DTUs whose meter lists changed."""
    if new_dtus:
        await session.execute(
            insert(dtus), [{**d, "online": False, "last_seen_at": None} for d in new_dtus]
        )
    if new_meters:
        await session.execute(
            insert(meters),
            [{**m, "online": False, "relay": None, "consecutive_failures": 0} for m in new_meters],
        )
    changed = sorted({m["dtu_id"] for m in new_meters} | {d["id"] for d in new_dtus})
    for chunk in _chunks(changed):
        await session.execute(
            update(dtus).where(dtus.c.id.in_(chunk)).values(revision=dtus.c.revision + 1)
        )


async def remove(
    session: AsyncSession, dtu_ids: Sequence[str], meter_ids: Sequence[str]
) -> set[str]:
    """Remove meters and DTUs an import created (a DTU only when no meter is left on it);
    return the DTUs the meters were on."""
    dtus_touched: set[str] = set()
    for chunk in _chunks(meter_ids):
        dtu_of = select(meters.c.dtu_id).where(meters.c.id.in_(chunk)).distinct()
        touched = list((await session.scalars(dtu_of)).all())
        dtus_touched.update(touched)
        await session.execute(
            delete(pending_commands).where(pending_commands.c.meter_id.in_(chunk))
        )
        await session.execute(delete(meters).where(meters.c.id.in_(chunk)))
        for dtu_chunk in _chunks(touched):
            await session.execute(
                update(dtus).where(dtus.c.id.in_(dtu_chunk)).values(revision=dtus.c.revision + 1)
            )
    for chunk in _chunks(dtu_ids):
        still_used = select(func.count()).where(meters.c.dtu_id == dtus.c.id).scalar_subquery()
        await session.execute(delete(dtus).where(dtus.c.id.in_(chunk), still_used == 0))
    return dtus_touched
