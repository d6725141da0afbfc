"""Replicas' leases (who shares the field) and read-now requests any replica may act on."""

from __future__ import annotations

from datetime import datetime, timedelta

from prepaid_common.outbox import ServiceStore
from sqlalchemy import delete, func, insert, select, update

from collector.tables import read_requests, replicas


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
