"""The payments service's internal API: routes only, each calling one operation."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Literal

from fastapi import APIRouter, Query, Request, Response
from prepaid_common.contracts.api.payments import (
    BillCheck,
    ChannelState,
    OrderRequest,
    OrderView,
    PaymentIssuePage,
    PaymentPage,
    PaymentView,
    RefundRequest,
    RefundView,
    TopUpRequest,
)
from prepaid_common.outbox import ServiceStore

from payments import operations
from payments.domain.orders import Provider
from payments.operations import orders, refunds, webhooks
from payments.providers.registry import ProviderRegistry


def internal_router(
    store: ServiceStore, providers: ProviderRegistry, *, order_lifetime: timedelta
) -> APIRouter:
    """Return the routes the gateway calls, bound to the service's store and providers."""
    router = APIRouter(prefix="/internal")

    @router.post("/top-ups", status_code=201)
    async def top_up(body: TopUpRequest) -> PaymentView:
        return await operations.record_counter_top_up(store, request=body)

    @router.get("/payments")
    async def list_for_account(
        account_id: str,
        limit: int = Query(50, ge=1, le=500),
        offset: int = Query(0, ge=0),
    ) -> PaymentPage:
        return await operations.list_payments(
            store, account_id=account_id, limit=limit, offset=offset
        )

    @router.get("/payments/{payment_id}")
    async def get_payment(payment_id: str) -> PaymentView:
        return await operations.get_payment(store, payment_id=payment_id)

    @router.get("/channels")
    async def channels() -> list[ChannelState]:
        return providers.states()

    @router.post("/orders", status_code=201)
    async def start_order(body: OrderRequest) -> OrderView:
        return await orders.start_order(store, providers, request=body, lifetime=order_lifetime)

    @router.get("/orders/{out_trade_no}")
    async def get_order(out_trade_no: str) -> OrderView:
        return await orders.get_order(store, out_trade_no=out_trade_no)

    @router.post("/orders/{out_trade_no}/sync")
    async def sync_order(out_trade_no: str) -> OrderView:
        return await orders.sync_order(store, providers, out_trade_no=out_trade_no)

    @router.post("/orders/{out_trade_no}/refunds", status_code=201)
    async def prepare_refund(out_trade_no: str, body: RefundRequest) -> RefundView:
        return await refunds.prepare_refund(store, out_trade_no=out_trade_no, request=body)

    @router.post("/refunds/{out_refund_no}/send")
    async def send_refund(out_refund_no: str) -> RefundView:
        return await refunds.send_refund(store, providers, out_refund_no=out_refund_no)

    @router.post("/refunds/{out_refund_no}/sync")
    async def sync_refund(out_refund_no: str) -> RefundView:
        return await refunds.sync_refund(store, providers, out_refund_no=out_refund_no)

    @router.post("/refunds/{out_refund_no}/cancel")
    async def cancel_refund(out_refund_no: str) -> RefundView:
        return await refunds.cancel_refund(store, out_refund_no=out_refund_no)

    @router.get("/refunds/{out_refund_no}")
    async def get_refund(out_refund_no: str) -> RefundView:
        return await refunds.get_refund(store, out_refund_no=out_refund_no)

    @router.get("/payment-issues")
    async def payment_issues(
        limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0)
    ) -> PaymentIssuePage:
        return await orders.list_issues(store, limit=limit, offset=offset)

    @router.post("/bills/{provider}/{day}")
    async def check_bill(provider: Literal["wechatpay", "alipay"], day: date) -> BillCheck:
        return await orders.check_bill(store, providers, provider=Provider(provider), day=day)

    # The providers' notifications, forwarded untouched by the gateway: the signature covers
    # the raw bytes, so they are read as bytes and never parsed before verification.
    @router.post("/webhooks/wechatpay", response_class=Response)
    async def wechatpay_notification(request: Request) -> Response:
        answer = await webhooks.receive_wechatpay(
            store, providers, headers=dict(request.headers), body=await request.body()
        )
        return Response(answer.body, status_code=answer.status, media_type=answer.media_type)

    @router.post("/webhooks/alipay", response_class=Response)
    async def alipay_notification(request: Request) -> Response:
        answer = await webhooks.receive_alipay(store, providers, body=await request.body())
        return Response(answer.body, status_code=answer.status, media_type=answer.media_type)

    return router
