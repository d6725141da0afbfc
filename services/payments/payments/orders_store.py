"""SQL for provider orders, their refunds and the issues raised for operators."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from prepaid_common.contracts.api.payments import OrderView, PaymentIssue, RefundView
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from payments.domain.orders import OrderStatus, PaidReport
from payments.tables import issues, orders, refunds


def _order_view(row: Any) -> OrderView:
    mapping = dict(row._mapping)
    pay_data = json.loads(mapping.pop("pay_data"))
    return OrderView(
        **{k: v for k, v in mapping.items() if k in OrderView.model_fields}, **pay_data
    )


async def insert_order(
    session: AsyncSession, order: OrderView, *, provider: str, next_query_at: datetime
) -> None:
    """Write a new order with what its payer needs."""
    pay_fields = {"code_url", "h5_url", "qr_code", "pay_url", "jsapi"}
    pay_data = order.model_dump(mode="json", include=pay_fields, exclude_none=True)
    row = order.model_dump(exclude=pay_fields)
    await session.execute(
        insert(orders).values(
            **row,
            provider=provider,
            pay_data=json.dumps(pay_data),
            queries=0,
            next_query_at=next_query_at,
        )
    )


async def order_by_no(session: AsyncSession, out_trade_no: str) -> OrderView | None:
    """Return an order by our trade number, or None."""
    row = (
        await session.execute(select(orders).where(orders.c.out_trade_no == out_trade_no))
    ).first()
    return None if row is None else _order_view(row)


async def provider_of(session: AsyncSession, out_trade_no: str) -> str | None:
    """Return which provider an order went to, or None when we never made it."""
    return await session.scalar(
        select(orders.c.provider).where(orders.c.out_trade_no == out_trade_no)
    )


async def mark_paid(
    session: AsyncSession,
    report: PaidReport,
    *,
    payable: Iterable[OrderStatus],
    payment_id: str,
) -> bool:
    """Mark an order paid if it still may be; False when another message did it first."""
    # The conditional change is what makes a payment credit once: racing notifications
    # all try it, the database lets exactly one through.
    result = await session.execute(
        update(orders)
        .where(
            orders.c.out_trade_no == report.out_trade_no,
            orders.c.status.in_([status.value for status in payable]),
        )
        .values(
            status=OrderStatus.PAID.value,
            paid_at=report.paid_at,
            transaction_id=report.transaction_id,
            payment_id=payment_id,
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def change_status(
    session: AsyncSession, out_trade_no: str, *, old: OrderStatus, new: OrderStatus
) -> bool:
    """Move an order from one state to another; False if it was no longer in ``old``."""
    result = await session.execute(
        update(orders)
        .where(orders.c.out_trade_no == out_trade_no, orders.c.status == old.value)
        .values(status=new.value)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def silent_orders(session: AsyncSession, *, now: datetime, limit: int) -> list[OrderView]:
    """Return pending orders whose time to ask the provider again has come."""
    rows = await session.execute(
        select(orders)
        .where(orders.c.status == OrderStatus.PENDING.value, orders.c.next_query_at <= now)
        .order_by(orders.c.next_query_at)
        .limit(limit)
    )
    return [_order_view(row) for row in rows]


async def queried(session: AsyncSession, out_trade_no: str, *, next_query_at: datetime) -> None:
    """Count one more query of a silent order and set when to ask again."""
    await session.execute(
        update(orders)
        .where(orders.c.out_trade_no == out_trade_no)
        .values(queries=orders.c.queries + 1, next_query_at=next_query_at)
    )


async def queries_of(session: AsyncSession, out_trade_no: str) -> int:
    """Return how often the provider was asked about an order."""
    return int(
        await session.scalar(select(orders.c.queries).where(orders.c.out_trade_no == out_trade_no))
        or 0
    )


async def orders_paid_between(
    session: AsyncSession, *, provider: str, start: datetime, end: datetime
) -> list[OrderView]:
    """Return the orders a provider paid in a period (for comparing with its bill)."""
    rows = await session.execute(
        select(orders).where(
            orders.c.provider == provider,
            orders.c.paid_at >= start,
            orders.c.paid_at < end,
        )
    )
    return [_order_view(row) for row in rows]


async def orders_by_nos(session: AsyncSession, out_trade_nos: list[str]) -> list[OrderView]:
    """Return the orders among some trade numbers that we made."""
    if not out_trade_nos:
        return []
    rows = await session.execute(select(orders).where(orders.c.out_trade_no.in_(out_trade_nos)))
    return [_order_view(row) for row in rows]


# --- issues ------------------------------------------------------------------------------
async def issue_exists(session: AsyncSession, issue_id: str) -> bool:
    """Whether an issue was already raised (a retried message raises none again)."""
    return (await session.scalar(select(issues.c.id).where(issues.c.id == issue_id))) is not None


async def insert_issue(session: AsyncSession, issue: PaymentIssue) -> None:
    """Raise an issue for an operator."""
    await session.execute(insert(issues).values(**issue.model_dump()))


async def issues_page(session: AsyncSession, *, limit: int, offset: int) -> list[PaymentIssue]:
    """Return a page of issues, newest first."""
    rows = await session.execute(
        select(issues).order_by(issues.c.created_at.desc(), issues.c.id).limit(limit).offset(offset)
    )
    return [PaymentIssue(**row._mapping) for row in rows]


# --- refunds -----------------------------------------------------------------------------
async def insert_refund(session: AsyncSession, refund: RefundView) -> None:
    """Write a refund about to be asked of the provider."""
    await session.execute(insert(refunds).values(**refund.model_dump()))


async def refund_by_no(session: AsyncSession, out_refund_no: str) -> RefundView | None:
    """Return a refund by our refund number, or None."""
    row = (
        await session.execute(select(refunds).where(refunds.c.out_refund_no == out_refund_no))
    ).first()
    return None if row is None else RefundView(**row._mapping)


async def refunds_in_flight(session: AsyncSession, out_trade_no: str) -> Decimal:
    """Return the sum of an order's refunds not yet failed."""
    rows = await session.execute(
        select(refunds.c.amount).where(
            refunds.c.out_trade_no == out_trade_no, refunds.c.status != "failed"
        )
    )
    return sum((row.amount for row in rows), Decimal("0.00"))


async def refund_sent(
    session: AsyncSession, out_refund_no: str, *, now: datetime, next_at: datetime
) -> None:
    """Record that the provider was asked (the first time) and when to ask about it next."""
    await session.execute(
        update(refunds)
        .where(refunds.c.out_refund_no == out_refund_no)
        .values(sent_at=func.coalesce(refunds.c.sent_at, now), next_query_at=next_at)
    )


async def refund_was_sent(session: AsyncSession, out_refund_no: str) -> bool:
    """Whether the provider was ever asked for this refund."""
    sent = await session.scalar(
        select(refunds.c.sent_at).where(refunds.c.out_refund_no == out_refund_no)
    )
    return sent is not None


async def open_refunds(session: AsyncSession, *, now: datetime, limit: int) -> list[RefundView]:
    """Return refunds sent but not settled whose time to ask the provider has come."""
    rows = await session.execute(
        select(refunds)
        .where(refunds.c.status == "processing", refunds.c.next_query_at <= now)
        .order_by(refunds.c.next_query_at)
        .limit(limit)
    )
    return [RefundView(**row._mapping) for row in rows]


async def finish_refund(
    session: AsyncSession, out_refund_no: str, *, status: str, at: datetime
) -> bool:
    """Settle a processing refund as succeeded or failed; False if it was settled already."""
    result = await session.execute(
        update(refunds)
        .where(refunds.c.out_refund_no == out_refund_no, refunds.c.status == "processing")
        .values(status=status, succeeded_at=at if status == "succeeded" else None)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def add_refunded(session: AsyncSession, out_trade_no: str, amount: Decimal) -> None:
    """Add a refund to its order; the order is ``refunded`` once all of it went back."""
    await session.execute(
        update(orders)
        .where(orders.c.out_trade_no == out_trade_no)
        .values(refunded_amount=orders.c.refunded_amount + amount)
    )
    await session.execute(
        update(orders)
        .where(
            orders.c.out_trade_no == out_trade_no,
            orders.c.refunded_amount >= orders.c.amount,
            orders.c.status == OrderStatus.PAID.value,
        )
        .values(status=OrderStatus.REFUNDED.value)
    )
