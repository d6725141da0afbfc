"""The providers over HTTP (httpx): each request signed, each answer's signature verified.

Both clients offer one surface (``ProviderClient``) so the use cases need not know which
provider an order went to.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Protocol

from payments.domain.bills import BillLine
from payments.domain.orders import Channel, PaidReport


@dataclass(frozen=True)
class NewOrder:
    """What we ask a provider to collect."""

    out_trade_no: str
    channel: Channel
    amount: Decimal
    description: str
    expires_at: datetime
    openid: str | None = None
    payer_ip: str | None = None


@dataclass(frozen=True)
class QueryAnswer:
    """What a provider says about one of our orders: paid (with the report), or still open."""

    paid: PaidReport | None
    state: str
    closed: bool = False


@dataclass(frozen=True)
class RefundAnswer:
    """What a provider says about a refund."""

    succeeded: bool
    state: str


class ProviderClient(Protocol):
    """One provider, as the use cases see it."""

    async def start(self, order: NewOrder) -> dict[str, object]:
        """Create the order there; return what the payer needs (code_url, qr_code, ...)."""
        ...

    async def query(self, out_trade_no: str) -> QueryAnswer:
        """Ask whether an order was paid."""
        ...

    async def close(self, out_trade_no: str) -> None:
        """Close an unpaid order so it can no longer be paid."""
        ...

    async def refund(
        self, *, out_trade_no: str, out_refund_no: str, amount: Decimal, total: Decimal, reason: str
    ) -> RefundAnswer:
        """Give money back on a paid order."""
        ...

    async def refund_status(self, out_refund_no: str) -> RefundAnswer | None:
        """Ask how a refund went; None when the provider never received it."""
        ...

    async def trade_bill(self, day: date) -> list[BillLine]:
        """Return the paid trades of a day's bill (the provider's day: Beijing time)."""
        ...
