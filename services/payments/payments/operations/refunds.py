"""Refunds through the provider: prepared here, posted in billing's ledger by the caller, then
asked of the provider; settled by its answer (Alipay) or its notification (WeChat Pay)."""

from __future__ import annotations

import logging
import secrets

from prepaid_common.contracts import utcnow
from prepaid_common.contracts.api.payments import RefundRequest, RefundView
from prepaid_common.errors import Conflict, Invalid, NotFound
from prepaid_common.outbox import ServiceStore

from payments import orders_store
from payments.domain.orders import Channel, OrderStatus
from payments.providers.registry import ProviderRegistry

log = logging.getLogger(__name__)


async def prepare_refund(
    service_store: ServiceStore, *, out_trade_no: str, request: RefundRequest
) -> RefundView:
    """Check a refund fits what the order took and keep it, not yet asked of the provider."""
    now = utcnow()
    async with service_store.unit_of_work() as uow:
        order = await orders_store.order_by_no(uow.session, out_trade_no)
        if order is None:
            raise NotFound(f"order {out_trade_no} does not exist")
        if order.status != OrderStatus.PAID.value:
            raise Conflict(f"order {out_trade_no} is {order.status}: only a paid one is refunded")
        already = await orders_store.refunds_in_flight(uow.session, out_trade_no)
        if request.amount > order.amount - already:
            raise Invalid(
                f"refund {request.amount} exceeds what is left of order {out_trade_no} "
                f"({order.amount - already})"
            )
        refund = RefundView(
            out_refund_no=f"RF{now:%Y%m%d%H%M%S}{secrets.token_hex(8)}",
            out_trade_no=out_trade_no,
            account_id=order.account_id,
            amount=request.amount,
            reason=request.reason,
            status="processing",
            operator=request.operator,
            created_at=now,
        )
        await orders_store.insert_refund(uow.session, refund)
    return refund


async def send_refund(
    service_store: ServiceStore, providers: ProviderRegistry, *, out_refund_no: str
) -> RefundView:
    """Ask the provider to give the money back (again, if the last try did not get through)."""
    async with service_store.sessionmaker() as session:
        refund = await orders_store.refund_by_no(session, out_refund_no)
        order = (
            None if refund is None else await orders_store.order_by_no(session, refund.out_trade_no)
        )
    if refund is None or order is None:
        raise NotFound(f"refund {out_refund_no} does not exist")
    if refund.status != "processing":
        return refund
    answer = await providers.client(Channel(order.channel).provider).refund(
        out_trade_no=order.out_trade_no,
        out_refund_no=out_refund_no,
        amount=refund.amount,
        total=order.amount,
        reason=refund.reason,
    )
    if answer.succeeded:
        await settle_refund(service_store, out_refund_no=out_refund_no, succeeded=True)
    elif answer.state not in {"PROCESSING", ""}:
        log.warning("refund %s refused by the provider: %s", out_refund_no, answer.state)
        await settle_refund(service_store, out_refund_no=out_refund_no, succeeded=False)
    return await get_refund(service_store, out_refund_no=out_refund_no)


async def settle_refund(
    service_store: ServiceStore, *, out_refund_no: str, succeeded: bool
) -> None:
    """Record a refund's outcome once (a repeated notification changes nothing)."""
    async with service_store.unit_of_work() as uow:
        refund = await orders_store.refund_by_no(uow.session, out_refund_no)
        if refund is None:
            log.warning("refund notification for unknown refund %s", out_refund_no)
            return
        status = "succeeded" if succeeded else "failed"
        if await orders_store.finish_refund(uow.session, out_refund_no, status=status, at=utcnow()):
            if succeeded:
                await orders_store.add_refunded(uow.session, refund.out_trade_no, refund.amount)
            log.info("refund %s of %s: %s", out_refund_no, refund.out_trade_no, status)


async def cancel_refund(service_store: ServiceStore, *, out_refund_no: str) -> RefundView:
    """Give up a refund never sent (the ledger refused it)."""
    await settle_refund(service_store, out_refund_no=out_refund_no, succeeded=False)
    return await get_refund(service_store, out_refund_no=out_refund_no)


async def get_refund(service_store: ServiceStore, *, out_refund_no: str) -> RefundView:
    """Return a refund by our refund number."""
    async with service_store.sessionmaker() as session:
        refund = await orders_store.refund_by_no(session, out_refund_no)
    if refund is None:
        raise NotFound(f"refund {out_refund_no} does not exist")
    return refund
