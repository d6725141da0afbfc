"""The sales report (收款报表): money taken per day or month, by channel and operator, and
the counter's cash reconciled with the cashiers' closed shifts (收费员日结)."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel

from prepaid_common.contracts.api.site_office import ShiftView


class SalesRow(BaseModel):
    """Money in and out of one channel by one operator in one period (a local day or
    month), as the ledger's clearing account of the channel recorded it."""

    period: str
    channel: str
    operator: str
    payments: int
    received: Decimal
    refunded: Decimal
    net: Decimal


class CashierShifts(BaseModel):
    """One cashier's shifts closed within the report's span, added up."""

    cashier: str
    shifts: int
    expected_cash: Decimal
    counted_cash: Decimal
    difference: Decimal  # counted - expected: negative when the drawer was short


class CashReconciliation(BaseModel):
    """The counter's cash (channel ``cash``) in the span against the shifts closed in it.

    ``counter_cash == expected_cash - before_span + not_yet_closed + outside_shifts`` when
    the ledger and the shifts agree (``agrees``). ``expected_cash`` is what each shift
    recorded when it closed; the other parts are read from the ledger now, so a cash
    movement posted into a shift's time after it closed shows as a disagreement.
    """

    shifts: list[ShiftView]  # closed within the span, by close time
    by_cashier: list[CashierShifts]
    expected_cash: Decimal
    counted_cash: Decimal
    difference: Decimal
    counter_cash: Decimal  # the cash channel's net in the span (by_channel["cash"])
    # Part of expected_cash taken before the span (a shift that opened before `from`).
    before_span: Decimal
    # Cash top-ups and refunds in the span that no shift closed within it covers: a
    # shift still open, or closed after `to`.
    not_yet_closed: Decimal
    # Cash movements in the span that no shift counts (a reversal, 冲正).
    outside_shifts: Decimal
    agrees: bool


class SalesReport(BaseModel):
    """Rows by period, channel and operator; totals by channel (each equals the movement of
    the channel's clearing account in the ledger over the same span); the cash against the
    cashiers' shifts."""

    granularity: Literal["day", "month"]
    start: str
    end: str
    items: list[SalesRow]
    by_channel: dict[str, Decimal]
    total: Decimal
    cash: CashReconciliation
