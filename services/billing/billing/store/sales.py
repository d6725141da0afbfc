"""The sales report's query: the ledger's clearing entries, by local period, channel and
operator, and the counter's cash reconciled with the cashiers' shifts closed in the span."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Literal

from prepaid_common.contracts.api.sales import (
    CashierShifts,
    CashReconciliation,
    SalesReport,
    SalesRow,
)
from prepaid_common.contracts.api.site_office import ShiftView
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.domain.ledger import clearing_ledger
from billing.store.reference import load_policy
from billing.tables import cashier_shifts, entries, transactions

CLEARING = "clearing:"
ZERO = Decimal("0.00")
# The counter's drawer, and the kinds of transaction a cashier's shift counts in it
# (billing.store.site_office.cash_since).
DRAWER = clearing_ledger("cash")
SHIFT_KINDS = ("top_up", "refund")


@dataclass(frozen=True)
class CashMovement:
    created_at: datetime
    operator: str
    kind: str
    cash: Decimal  # into the drawer: positive for a top-up, negative for a refund


async def sales_report(
    session: AsyncSession, *, start: date, end: date, granularity: Literal["day", "month"]
) -> SalesReport:
    """Return money received and refunded through each channel by each operator, from the
    local day ``start`` to ``end`` inclusive (the site's zone), and the cash against the
    shifts closed in those days."""
    zone = (await load_policy(session)).zone
    since = datetime.combine(start, time(), zone)
    until = datetime.combine(end + timedelta(days=1), time(), zone)
    rows = await session.execute(
        select(
            transactions.c.created_at,
            transactions.c.operator,
            transactions.c.kind,
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
    cash: list[CashMovement] = []
    for created_at, operator, kind, ledger_account, amount in rows:
        day = created_at.astimezone(zone).date().isoformat()
        period = day if granularity == "day" else day[:7]
        cell = cells[(period, ledger_account.removeprefix(CLEARING), operator)]
        if amount < 0:
            cell[0] += 1
            cell[1] += -amount
        else:
            cell[2] += amount
        if ledger_account == DRAWER:
            cash.append(CashMovement(created_at, operator, kind, -amount))
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
    shifts = await _shifts_closed(session, since=since, until=until)
    return SalesReport(
        granularity=granularity,
        start=start.isoformat(),
        end=end.isoformat(),
        items=items,
        by_channel=dict(sorted(by_channel.items())),
        total=sum((item.net for item in items), ZERO),
        cash=reconcile(
            shifts,
            cash,
            counter_cash=by_channel.get("cash", ZERO),
            before_span=await _cash_before(session, shifts, since=since),
        ),
    )


def reconcile(
    shifts: Sequence[ShiftView],
    cash: Sequence[CashMovement],
    *,
    counter_cash: Decimal,
    before_span: Decimal,
) -> CashReconciliation:
    """Set the span's cash movements against the shifts closed in it.

    A shift holds its cashier's cash top-ups and refunds after ``opened_at`` up to and
    including ``closed_at``; a cashier's shifts follow each other, so a movement belongs to
    the first of its cashier's shifts closed at or after it, if that one opened before it.
    """
    closes: dict[str, list[ShiftView]] = defaultdict(list)
    for closed in shifts:
        closes[closed.cashier].append(closed)
    in_shifts = not_yet_closed = outside = ZERO
    for movement in cash:
        if movement.kind not in SHIFT_KINDS:
            outside += movement.cash
            continue
        shift = next(
            (s for s in closes.get(movement.operator, ()) if movement.created_at <= _closed(s)),
            None,
        )
        opened = None if shift is None else shift.opened_at
        if shift is not None and (opened is None or opened < movement.created_at):
            in_shifts += movement.cash
        else:
            not_yet_closed += movement.cash
    cashiers: dict[str, list[ShiftView]] = dict(sorted(closes.items()))
    by_cashier = [
        CashierShifts(
            cashier=cashier,
            shifts=len(own),
            expected_cash=sum((s.expected_cash for s in own), ZERO),
            counted_cash=sum((_counted(s) for s in own), ZERO),
            difference=sum((_counted(s) - s.expected_cash for s in own), ZERO),
        )
        for cashier, own in cashiers.items()
    ]
    expected = sum((c.expected_cash for c in by_cashier), ZERO)
    counted = sum((c.counted_cash for c in by_cashier), ZERO)
    return CashReconciliation(
        shifts=list(shifts),
        by_cashier=by_cashier,
        expected_cash=expected,
        counted_cash=counted,
        difference=counted - expected,
        counter_cash=counter_cash,
        before_span=before_span,
        not_yet_closed=not_yet_closed,
        outside_shifts=outside,
        # The rest of the counter's cash is not_yet_closed and outside by construction, so
        # the question is whether the ledger still holds in the shifts what they recorded.
        agrees=expected - before_span == in_shifts,
    )


async def _shifts_closed(
    session: AsyncSession, *, since: datetime, until: datetime
) -> list[ShiftView]:
    rows = await session.execute(
        select(cashier_shifts)
        .where(cashier_shifts.c.closed_at >= since, cashier_shifts.c.closed_at < until)
        .order_by(cashier_shifts.c.closed_at, cashier_shifts.c.cashier)
    )
    return [
        ShiftView(
            id=row.id,
            cashier=row.cashier,
            opened_at=row.opened_at,
            closed_at=row.closed_at,
            top_ups=row.top_ups,
            cash_in=row.cash_in,
            refunds=row.refunds,
            cash_out=row.cash_out,
            expected_cash=row.cash_in - row.cash_out,
            counted_cash=row.counted_cash,
            difference=row.counted_cash - (row.cash_in - row.cash_out),
            note=row.note,
        )
        for row in rows
    ]


async def _cash_before(
    session: AsyncSession, shifts: Sequence[ShiftView], *, since: datetime
) -> Decimal:
    """The cash the ledger holds in these shifts from before ``since`` (only a cashier's
    first shift in the span can have opened before it: one query per such cashier)."""
    total = ZERO
    for shift in shifts:
        if shift.opened_at is not None and shift.opened_at >= since:
            continue
        query = (
            select(func.sum(entries.c.amount))
            .join(transactions, entries.c.transaction_id == transactions.c.id)
            .where(
                entries.c.ledger_account == DRAWER,
                transactions.c.operator == shift.cashier,
                transactions.c.kind.in_(SHIFT_KINDS),
                transactions.c.created_at < since,
            )
        )
        if shift.opened_at is not None:
            query = query.where(transactions.c.created_at > shift.opened_at)
        total -= await session.scalar(query) or ZERO
    return total


def _closed(shift: ShiftView) -> datetime:
    assert shift.closed_at is not None  # every shift here is closed
    return shift.closed_at


def _counted(shift: ShiftView) -> Decimal:
    assert shift.counted_cash is not None  # every shift here is closed
    return shift.counted_cash
