"""A provider order's life: channels, our trade number, states and when to ask again."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from prepaid_common.errors import Conflict, Invalid


class Provider(StrEnum):
    """Who takes the money."""

    WECHATPAY = "wechatpay"
    ALIPAY = "alipay"


class Channel(StrEnum):
    """How the tenant pays: a QR code, a page inside WeChat, a mobile browser."""

    WECHAT_NATIVE = "wechat_native"
    WECHAT_JSAPI = "wechat_jsapi"
    WECHAT_H5 = "wechat_h5"
    ALIPAY_QR = "alipay_qr"
    ALIPAY_WAP = "alipay_wap"

    @property
    def provider(self) -> Provider:
        """Return the provider behind the channel."""
        return Provider.WECHATPAY if self.value.startswith("wechat") else Provider.ALIPAY


class OrderStatus(StrEnum):
    """Where an order is; only ``pending`` may still become ``paid``."""

    PENDING = "pending"
    PAID = "paid"
    CLOSED = "closed"
    EXPIRED = "expired"
    REFUNDED = "refunded"


# Which state may follow which. A payment arriving for an order we already closed or let
# expire is still money taken: it is credited (the provider refuses to pay a closed order,
# so this only happens when the two crossed).
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.PENDING: frozenset({OrderStatus.PAID, OrderStatus.CLOSED, OrderStatus.EXPIRED}),
    OrderStatus.CLOSED: frozenset({OrderStatus.PAID}),
    OrderStatus.EXPIRED: frozenset({OrderStatus.PAID}),
    OrderStatus.PAID: frozenset({OrderStatus.REFUNDED}),
    OrderStatus.REFUNDED: frozenset(),
}
PAYABLE = frozenset(s for s, nexts in TRANSITIONS.items() if OrderStatus.PAID in nexts)

OUT_TRADE_NO_PREFIX = "PP"
ORDER_LIFETIME = timedelta(minutes=15)
MAX_ORDER_AMOUNT = Decimal("50000.00")
# Reconciliation asks a silent provider again after these pauses, then every last one.
QUERY_DELAYS = (
    timedelta(seconds=15),
    timedelta(seconds=30),
    timedelta(minutes=1),
    timedelta(minutes=2),
    timedelta(minutes=5),
    timedelta(minutes=10),
)


def check_transition(current: OrderStatus, new: OrderStatus) -> None:
    """Refuse a state change the order's life does not allow."""
    if new not in TRANSITIONS[current]:
        raise Conflict(f"an order {current.value} cannot become {new.value}")


def new_out_trade_no(now: datetime) -> str:
    """Return a fresh merchant trade number: 32 characters of [0-9A-Za-z], time-ordered."""
    # WeChat allows 6-32 of [0-9A-Za-z_-|*]; a timestamp and 80 random bits never collide.
    return f"{OUT_TRADE_NO_PREFIX}{now:%Y%m%d%H%M%S}{secrets.token_hex(8)}"


def validate_order_amount(amount: Decimal) -> Decimal:
    """Return the amount if an order may ask for it (positive, whole fen, not absurd)."""
    if not amount.is_finite() or amount <= 0:
        raise Invalid("amount must be greater than zero")
    if amount != amount.quantize(Decimal("0.01")):
        raise Invalid("amount must have at most two decimal places (fen)")
    if amount > MAX_ORDER_AMOUNT:
        raise Invalid(f"amount must be at most {MAX_ORDER_AMOUNT}")
    return amount


def next_query_at(*, now: datetime, queries_done: int, expires_at: datetime) -> datetime:
    """Return when to ask the provider about a silent order again (growing pauses).

    Never later than the order's expiry while it is still open: that is when it is closed.
    """
    after_pause = now + QUERY_DELAYS[min(queries_done, len(QUERY_DELAYS) - 1)]
    return min(after_pause, expires_at) if now < expires_at else after_pause


@dataclass(frozen=True)
class PaidReport:
    """What a verified provider message says was paid for one of our orders."""

    provider: Provider
    out_trade_no: str
    transaction_id: str
    amount: Decimal
    paid_at: datetime


def amount_matches(*, ordered: Decimal, paid: Decimal) -> bool:
    """Whether the provider took exactly the order's amount (compared as Decimal)."""
    return ordered == paid
