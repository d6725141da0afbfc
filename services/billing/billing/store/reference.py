"""Reference data every reading needs: tariff versions and the site policy, cached."""

from __future__ import annotations

import time

from prepaid_common.contracts import utcnow
from prepaid_common.errors import NotFound
from prepaid_common.outbox import UnitOfWork
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from billing.domain.rating import TariffVersion
from billing.domain.supply import SitePolicy
from billing.domain.tariffs import TariffDefinition
from billing.tables import site_policy, tariff_versions


async def load_policy(session: AsyncSession) -> SitePolicy:
    """Return the site policy (the defaults until an operator sets one)."""
    raw = await session.scalar(select(site_policy.c.policy).where(site_policy.c.id == 1))
    return SitePolicy() if raw is None else SitePolicy.model_validate(raw)


async def save_policy(uow: UnitOfWork, policy: SitePolicy) -> None:
    """Store the site policy."""
    values = {"policy": policy.model_dump(mode="json"), "updated_at": utcnow()}
    done = await uow.session.execute(
        update(site_policy).where(site_policy.c.id == 1).values(**values)
    )
    if done.rowcount == 0:  # type: ignore[attr-defined]
        await uow.session.execute(insert(site_policy).values(id=1, **values))


async def load_tariff_versions(session: AsyncSession, tariff_id: str) -> list[TariffVersion]:
    """Return a tariff's versions, oldest first."""
    rows = (
        await session.execute(
            select(tariff_versions)
            .where(tariff_versions.c.tariff_id == tariff_id)
            .order_by(tariff_versions.c.effective_from)
        )
    ).all()
    if not rows:
        raise NotFound(f"tariff {tariff_id} does not exist")
    return [
        TariffVersion(row.id, row.effective_from, TariffDefinition.model_validate(row.definition))
        for row in rows
    ]


class ReferenceCache:
    """Tariff versions and the site policy, kept for ``ttl`` seconds.

    Billing drops the cache whenever it changes them itself; another billing replica's
    change is seen here within ``ttl`` (a new tariff version takes effect at an instant
    chosen ahead, so a few seconds of delay do not misprice anything scheduled normally).
    """

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._policy: tuple[float, SitePolicy] | None = None
        self._versions: dict[str, tuple[float, list[TariffVersion]]] = {}

    def clear(self) -> None:
        """Forget everything kept."""
        self._policy = None
        self._versions.clear()

    async def policy(self, session: AsyncSession) -> SitePolicy:
        """Return the site policy, from the cache while it is fresh."""
        kept = self._policy
        if kept is not None and time.monotonic() - kept[0] <= self._ttl:
            return kept[1]
        policy = await load_policy(session)
        self._policy = (time.monotonic(), policy)
        return policy

    async def versions(self, session: AsyncSession, tariff_id: str) -> list[TariffVersion]:
        """Return a tariff's versions, from the cache while they are fresh."""
        kept = self._versions.get(tariff_id)
        if kept is not None and time.monotonic() - kept[0] <= self._ttl:
            return kept[1]
        versions = await load_tariff_versions(session, tariff_id)
        self._versions[tariff_id] = (time.monotonic(), versions)
        return versions
