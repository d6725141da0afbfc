"""The sales report's query: the ledger's clearing entries, by local period, channel and
operator."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Literal

from prepaid_common.contracts.api.sales import SalesReport, SalesRow
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.store.reference import load_policy
from billing.tables import entries, transactions

CLEARING = "clearing:"
ZERO = Decimal("0.00")


async def sales_report(
    session: AsyncSession, *, start: date, end: date, granularity: Literal["day", "month"]
) -> SalesReport:
    """Return money received and refunded through each channel by each operator, from the
    local day ``start`` to ``end`` inclusive (the site's zone)."""
    zone = (await load_policy(session)).zone
    since = datetime.combine(start, time(), zone)
    until = datetime.combine(end + timedelta(days=1), time(), zone)
    rows = await session.execute(
        select(
            transactions.c.created_at,
            transactions.c.operator,
            entries.c.ledger_account,
            entries.c.amount,
        )
        .join(entries, entries.c.transaction_id == transactions.c.id)
        .where(
            entries.c.ledger_account.like(f"{CLEARING}%"),
            transactions.c.created_at >= since,
            transactions.c.created_at < until,
        )
    )
    # Money in debits the channel's clearing account (a negative entry); a refund credits it.
    cells: dict[tuple[str, str, str], list[Decimal]] = defaultdict(lambda: [ZERO, ZERO, ZERO])
    for created_at, operator, ledger_account, amount in rows:
        day = created_at.astimezone(zone).date().isoformat()
        period = day if granularity == "day" else day[:7]
        cell = cells[(period, ledger_account.removeprefix(CLEARING), operator)]
        if amount < 0:
            cell[0] += 1
            cell[1] += -amount
        else:
            cell[2] += amount
    items = [
        SalesRow(
            period=period,
            channel=channel,
            operator=operator,
            payments=int(count),
            received=received,
            refunded=refunded,
            net=received - refunded,
        )
        for (period, channel, operator), (count, received, refunded) in sorted(cells.items())
    ]
    by_channel: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for item in items:
        by_channel[item.channel] += item.net
    return SalesReport(
        granularity=granularity,
        start=start.isoformat(),
        end=end.isoformat(),
        items=items,
        by_channel=dict(sorted(by_channel.items())),
        total=sum((item.net for item in items), ZERO),
    )
