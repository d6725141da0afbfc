"""What the calendar takes as days and months pass: the monthly fixed charge of a month the
account was open only part of, and how much daily debt recovery may take today."""

from __future__ import annotations

import calendar
from datetime import date
from decimal import Decimal

from billing.domain.money import FEN, ZERO, round_money


def monthly_charge_for(*, amount: Decimal, month: date, opened: date) -> Decimal:
    """Return the monthly fixed charge for the month starting at ``month`` (its 1st).

    A month the account was open for only part of (it was opened after the 1st) is charged
    for the days it was open, the opening day included: ``amount x open days / days in the
    month``, rounded half up to the fen. A month before the opening is not charged.
    """
    days = calendar.monthrange(month.year, month.month)[1]
    last = month.replace(day=days)
    if opened > last:
        return ZERO
    if opened <= month:
        return amount
    return round_money(amount * (last.day - opened.day + 1) / days)


def recoverable_debt(
    *, daily: Decimal, owed: Decimal, balance: Decimal, trip_line: Decimal
) -> Decimal:
    """Return what daily debt recovery takes today from the prepaid balance.

    Never more than ``daily`` nor than is owed, and only from credit the balance can bear:
    the balance after stays at least one fen above both zero and the trip line, so the
    recovery alone never cuts a meter (the cut is at or below the trip line) and never turns
    credit into a debt. Nothing is taken from a balance at or below that floor.
    """
    floor = max(trip_line, ZERO) + FEN
    room = balance - floor
    amount = min(daily, owed, room)
    return amount if amount > 0 else ZERO
