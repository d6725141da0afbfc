"""Postpaid terms (后付费): a month's bill, its due day, the late fee (滞纳金) and the cut
when it is overdue.

A postpaid account runs a negative balance as it consumes. When a local month ends, what
it owes (minus its balance then, if negative) is the month's bill, due on ``due_day`` of the
next month. Payments after the month ended go to that bill first. Once the due day and the
grace days have passed with some of it unpaid, the account is overdue: a late fee of
``late_fee_rate`` times the unpaid amount is posted for every day after the due day (once
per day, so a sweep that missed days posts them), and, where the terms say so, supply is
cut until the bill is paid. A bill paid within the grace days costs no late fee.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from prepaid_common.contracts.api.site_office import PostpaidTerms

from billing.domain.ledger import Entry, Transaction, tenant_ledger
from billing.domain.money import ZERO, round_money

REVENUE_LATE_FEES = "revenue:late_fees"


@dataclass(frozen=True)
class BillPeriod:
    """The month billed and the instant it closed (the next month's first local instant)."""

    month: str
    closed_at: datetime
    due_on: date


def last_closed(now: datetime, zone: ZoneInfo, terms: PostpaidTerms) -> BillPeriod:
    """The most recent month that has ended at ``now``, in the site's zone."""
    local = now.astimezone(zone)
    closed_at = datetime(local.year, local.month, 1, tzinfo=zone)
    billed = (closed_at - timedelta(days=1)).strftime("%Y-%m")
    return BillPeriod(billed, closed_at, date(local.year, local.month, terms.due_day))


def unpaid(*, balance_at_close: Decimal, credits_since: Decimal) -> tuple[Decimal, Decimal]:
    """(the bill, what is still unpaid of it) from the balance when the month closed and the
    money credited since."""
    billed = max(ZERO, -balance_at_close)
    return billed, max(ZERO, billed - credits_since)


def overdue(*, owed: Decimal, due_on: date, today: date, terms: PostpaidTerms) -> bool:
    """Whether an unpaid bill is past its due day and the grace days."""
    return owed > 0 and today > due_on + timedelta(days=terms.grace_days)


def late_fee_days(*, due_on: date, today: date) -> list[date]:
    """The days a late fee is due for, once overdue: every day after the due day."""
    return [due_on + timedelta(days=n) for n in range(1, (today - due_on).days + 1)]


def late_fee(
    *, account_id: str, day: date, owed: Decimal, terms: PostpaidTerms
) -> Transaction | None:
    """One day's late fee on the unpaid bill (None when it rounds to nothing)."""
    amount = round_money(owed * terms.late_fee_rate)
    if amount <= 0:
        return None
    return Transaction(
        operation_key=f"late-fee:{account_id}:{day.isoformat()}",
        kind="late_fee",
        account_id=account_id,
        memo=f"late fee for {day.isoformat()}: {terms.late_fee_rate} x {owed} unpaid",
        entries=(Entry(tenant_ledger(account_id), -amount), Entry(REVENUE_LATE_FEES, amount)),
    )
