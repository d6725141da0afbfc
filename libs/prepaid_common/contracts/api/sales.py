"""The sales report (收款报表): money taken per day or month, by channel and operator."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel


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


class SalesReport(BaseModel):
    """Rows by period, channel and operator; totals by channel (each equals the movement of
    the channel's clearing account in the ledger over the same span)."""

    granularity: Literal["day", "month"]
    start: str
    end: str
    items: list[SalesRow]
    by_channel: dict[str, Decimal]
    total: Decimal
