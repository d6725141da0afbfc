"""Tariffs and their versions."""

from __future__ import annotations

from datetime import datetime

from prepaid_common.contracts.api.billing import (
    Items,
    TariffSummary,
    TariffVersionView,
    TariffView,
)
from prepaid_common.errors import NotFound
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.domain.tariffs import TariffDefinition
from billing.tables import tariff_versions, tariffs


async def tariff_exists(session: AsyncSession, tariff_id: str | None) -> bool:
    """Whether a tariff with this id exists."""
    found = await session.scalar(select(tariffs.c.id).where(tariffs.c.id == tariff_id))
    return found is not None


async def require_tariff(session: AsyncSession, tariff_id: str | None) -> None:
    """Raise NotFound unless the tariff exists."""
    if not await tariff_exists(session, tariff_id):
        raise NotFound(f"tariff {tariff_id} does not exist")


async def insert_tariff(session: AsyncSession, *, tariff_id: str, name: str, now: datetime) -> None:
    """Create a tariff (without versions)."""
    await session.execute(insert(tariffs).values(id=tariff_id, name=name, created_at=now))


async def insert_version(
    session: AsyncSession,
    *,
    version_id: str,
    tariff_id: str,
    effective_from: datetime,
    definition: TariffDefinition,
    operator: str,
    now: datetime,
) -> None:
    """Add a version to a tariff."""
    await session.execute(
        insert(tariff_versions).values(
            id=version_id,
            tariff_id=tariff_id,
            effective_from=effective_from,
            definition=definition.model_dump(mode="json"),
            created_by=operator,
            created_at=now,
        )
    )


async def tariff_list(session: AsyncSession) -> Items[TariffSummary]:
    """Return every tariff, by id."""
    rows = (await session.execute(select(tariffs).order_by(tariffs.c.id))).all()
    return Items[TariffSummary](items=[TariffSummary.model_validate(r._mapping) for r in rows])


async def tariff_view(session: AsyncSession, tariff_id: str) -> TariffView:
    """Return a tariff with its versions, oldest first."""
    row = (await session.execute(select(tariffs).where(tariffs.c.id == tariff_id))).first()
    if row is None:
        raise NotFound(f"tariff {tariff_id} does not exist")
    versions = (
        await session.execute(
            select(tariff_versions)
            .where(tariff_versions.c.tariff_id == tariff_id)
            .order_by(tariff_versions.c.effective_from)
        )
    ).all()
    return TariffView(
        **row._mapping,
        versions=[TariffVersionView.model_validate(v._mapping) for v in versions],
    )
