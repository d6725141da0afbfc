"""Top-ups paid through WeChat Pay or Alipay: start an order, follow it, refund it."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from prepaid_common.contracts.api.payments import (
    BillCheck,
    ChannelStates,
    OrderBody,
    OrderView,
    PaymentIssuePage,
    RefundBody,
    RefundView,
)
from prepaid_common.contracts.dates import IsoDate
from prepaid_common.errors import ServiceError

from gateway.api.deps import (
    AuditLog,
    Billing,
    CurrentUser,
    Limit,
    Offset,
    Payments,
    StaffUser,
    as_operator,
    ensure_visible,
)

router = APIRouter(tags=["orders"])


@router.get("/payment-channels")
async def payment_channels(principal: CurrentUser, payments: Payments) -> ChannelStates:
    """Which providers this site takes (a provider not configured is off and says so)."""
    del principal
    return ChannelStates.model_validate(await payments.get("/internal/channels"))


@router.post("/accounts/{account_id}/orders", status_code=201)
async def start_order(
    principal: CurrentUser,
    billing: Billing,
    payments: Payments,
    audit: AuditLog,
    account_id: str,
    body: OrderBody,
    request: Request,
) -> OrderView:
    """Start a top-up paid through a provider; the answer has what the payer needs."""
    ensure_visible(principal, account_id)
    # Unknown account: 404; above the anti-hoarding cap: 409, before the payer pays.
    await billing.post(
        f"/internal/accounts/{account_id}/top-up-check", json={"amount": str(body.amount)}
    )
    _, answer = await payments.post(
        "/internal/orders",
        json={
            **as_operator(body, principal),
            "account_id": account_id,
            "payer_ip": request.client.host if request.client else None,
        },
    )
    order = OrderView.model_validate(answer)
    await audit.record(
        "order.start",
        order.out_trade_no,
        {"account_id": account_id, "channel": body.channel, "amount": str(body.amount)},
    )
    return order


@router.get("/orders/{out_trade_no}")
async def get_order(principal: CurrentUser, payments: Payments, out_trade_no: str) -> OrderView:
    """A provider order and its status (pending, paid, closed, expired, refunded)."""
    order = OrderView.model_validate(await payments.get(f"/internal/orders/{out_trade_no}"))
    ensure_visible(principal, order.account_id)
    return order


@router.post("/orders/{out_trade_no}/refunds", status_code=201)
async def refund_order(
    principal: StaffUser,
    billing: Billing,
    payments: Payments,
    audit: AuditLog,
    out_trade_no: str,
    body: RefundBody,
) -> RefundView:
    """Give money back through the provider; posted in the ledger as an audited refund."""
    _, prepared = await payments.post(
        f"/internal/orders/{out_trade_no}/refunds", json=as_operator(body, principal)
    )
    refund = RefundView.model_validate(prepared)
    order = OrderView.model_validate(await payments.get(f"/internal/orders/{out_trade_no}"))
    try:
        # The ledger first: money the tenant no longer holds is never sent back.
        await billing.post(
            f"/internal/accounts/{refund.account_id}/refunds",
            json={
                "amount": str(refund.amount),
                "key": refund.out_refund_no,
                "reason": f"{body.reason} (order {out_trade_no})",
                "operator": principal.username,
                "method": "wechat" if order.channel.startswith("wechat") else "alipay",
            },
        )
    except ServiceError:
        await payments.post(f"/internal/refunds/{refund.out_refund_no}/cancel", json=None)
        raise
    _, sent = await payments.post(f"/internal/refunds/{refund.out_refund_no}/send", json=None)
    refund = RefundView.model_validate(sent)
    await audit.record(
        "order.refund",
        out_trade_no,
        {"out_refund_no": refund.out_refund_no, "amount": str(refund.amount)},
    )
    return refund


@router.get("/payment-issues")
async def payment_issues(
    principal: StaffUser, payments: Payments, limit: Limit = 50, offset: Offset = 0
) -> PaymentIssuePage:
    """Payments an operator must look at: amounts that differ, payments we do not know."""
    del principal
    return PaymentIssuePage.model_validate(
        await payments.get("/internal/payment-issues", limit=limit, offset=offset)
    )


@router.post("/payment-bills/{provider}/{day}")
async def check_bill(
    principal: StaffUser, payments: Payments, provider: Literal["wechatpay", "alipay"], day: IsoDate
) -> BillCheck:
    """Compare a provider's trade bill of a day with our orders now (the daily job does it
    at 10:00 Beijing time for the day before); each difference is also a payment issue."""
    del principal
    _, answer = await payments.post(f"/internal/bills/{provider}/{day.isoformat()}", json=None)
    return BillCheck.model_validate(answer)
