"""Refunds through the provider: prepared here, posted in billing's ledger by the caller, then
asked of the provider; settled by its answer (Alipay) or its notification (WeChat Pay)."""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta

from prepaid_common.contracts import utcnow
from prepaid_common.contracts.api.payments import RefundRequest, RefundView
from prepaid_common.errors import Conflict, Invalid, NotFound, ServiceError
from prepaid_common.outbox import ServiceStore

from payments import orders_store
from payments.domain.orders import Channel, OrderStatus
from payments.providers import RefundAnswer
from payments.providers.registry import ProviderRegistry

log = logging.getLogger(__name__)

# How long to wait for a refund's notification before asking the provider.
REFUND_QUERY_PAUSE = timedelta(minutes=1)
RECONCILE_BATCH = 50


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
    now = utcnow()
    async with service_store.unit_of_work() as uow:
        # Before asking: if we stop half-way, the reconciliation loop asks about it.
        await orders_store.refund_sent(
            uow.session, out_refund_no, now=now, next_at=now + REFUND_QUERY_PAUSE
        )
    answer = await providers.client(Channel(order.channel).provider).refund(
        out_trade_no=order.out_trade_no,
        out_refund_no=out_refund_no,
        amount=refund.amount,
        total=order.amount,
        reason=refund.reason,
    )
    await _settle_by(service_store, out_refund_no, answer)
    return await get_refund(service_store, out_refund_no=out_refund_no)


async def _settle_by(service_store: ServiceStore, out_refund_no: str, answer: RefundAnswer) -> None:
    if answer.succeeded:
        await settle_refund(service_store, out_refund_no=out_refund_no, succeeded=True)
    elif answer.state not in {"PROCESSING", ""}:
        log.warning("refund %s refused by the provider: %s", out_refund_no, answer.state)
        await settle_refund(service_store, out_refund_no=out_refund_no, succeeded=False)


async def sync_refund(
    service_store: ServiceStore, providers: ProviderRegistry, *, out_refund_no: str
) -> RefundView:
    """Ask the provider how a sent refund went; send it again if it never arrived there."""
    refund = await get_refund(service_store, out_refund_no=out_refund_no)
    async with service_store.sessionmaker() as session:
        order = await orders_store.order_by_no(session, refund.out_trade_no)
        sent = await orders_store.refund_was_sent(session, out_refund_no)
    if refund.status != "processing" or order is None or not sent:
        return refund  # settled, or never sent: the ledger may not have it (an operator's)
    client = providers.client(Channel(order.channel).provider)
    answer = await client.refund_status(out_refund_no)
    if answer is None:
        # The provider never received it (we stopped half-way): the same out_refund_no
        # again, which the provider takes once.
        return await send_refund(service_store, providers, out_refund_no=out_refund_no)
    await _settle_by(service_store, out_refund_no, answer)
    now = utcnow()
    async with service_store.unit_of_work() as uow:
        await orders_store.refund_sent(
            uow.session, out_refund_no, now=now, next_at=now + REFUND_QUERY_PAUSE
        )
    return await get_refund(service_store, out_refund_no=out_refund_no)


async def reconcile_refunds(
    service_store: ServiceStore, providers: ProviderRegistry, *, now: datetime
) -> int:
    """Ask about refunds sent but not settled (their notification may be lost)."""
    async with service_store.sessionmaker() as session:
        waiting = await orders_store.open_refunds(session, now=now, limit=RECONCILE_BATCH)
    for refund in waiting:
        try:
            await sync_refund(service_store, providers, out_refund_no=refund.out_refund_no)
        except ServiceError as error:
            log.warning("refund %s: reconciliation failed: %s", refund.out_refund_no, error)
            async with service_store.unit_of_work() as uow:
                await orders_store.refund_sent(
                    uow.session,
                    refund.out_refund_no,
                    now=now,
                    next_at=now + REFUND_QUERY_PAUSE,
                )
    return len(waiting)


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
