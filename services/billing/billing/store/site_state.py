"""The site's state for billing's gauges: tripped and warned accounts, reading ages."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from prepaid_common.contracts import utcnow
from sqlalchemy import distinct, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.domain.rating import position_from_json
from billing.metrics import ACCOUNTS_TRIPPED, ACCOUNTS_WARNED, METERS_BY_READING_AGE, age_class
from billing.tables import accounts, meters


async def measure(session: AsyncSession, *, now: datetime | None = None) -> None:
    """Set billing's site gauges from the database (one pass over the bound meters)."""
    now = now or utcnow()
    tripped = await session.scalar(
        select(func.count(distinct(meters.c.account_id))).where(meters.c.supply == "off")
    )
    warned = await session.scalar(select(func.count()).where(accounts.c.warned))
    ages: Counter[str] = Counter()
    # The newest rated reading is in each meter's position: no scan of the readings table.
    for (raw,) in (await session.execute(select(meters.c.position))).all():
        last = position_from_json(raw).last
        ages["never" if last is None else age_class((now - last.read_at).total_seconds())] += 1
    ACCOUNTS_TRIPPED.set(tripped or 0)
    ACCOUNTS_WARNED.set(warned or 0)
    for age in ("under_5m", "5m_to_1h", "1h_to_1d", "over_1d", "never"):
        METERS_BY_READING_AGE.labels(age).set(ages[age])
