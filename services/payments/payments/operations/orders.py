"""Provider orders: start one, show it, credit a paid one exactly once, reconcile the silent."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from prepaid_common.contracts import utcnow
from prepaid_common.contracts.api.payments import (
    BillCheck,
    BillDifferenceView,
    OrderRequest,
    OrderView,
    PaymentIssue,
    PaymentIssuePage,
)
from prepaid_common.contracts.messages import PaymentIssueV1
from prepaid_common.errors import Invalid, NotFound, ServiceError
from prepaid_common.outbox import ServiceStore
from sqlalchemy.exc import IntegrityError

from payments import orders_store
from payments.domain.bills import OurPayment, compare_bill
from payments.domain.orders import (
    ORDER_LIFETIME,
    PAYABLE,
    Channel,
    OrderStatus,
    PaidReport,
    Provider,
    amount_matches,
    new_out_trade_no,
    next_query_at,
    validate_order_amount,
)
from payments.operations.receipts import Method, record_payment
from payments.providers import NewOrder
from payments.providers.registry import ProviderRegistry

log = logging.getLogger(__name__)

# payment.succeeded.v1 names the provider as billing knows it.
_METHOD: dict[Provider, Method] = {Provider.WECHATPAY: "wechat", Provider.ALIPAY: "alipay"}
RECONCILE_BATCH = 50
BEIJING = ZoneInfo("Asia/Shanghai")


class Credit(StrEnum):
    """What a paid report did: credited now, already credited, or flagged for an operator."""

    CREDITED = "credited"
    DUPLICATE = "duplicate"
    FLAGGED = "flagged"


async def start_order(
    service_store: ServiceStore,
    providers: ProviderRegistry,
    *,
    request: OrderRequest,
    lifetime: timedelta = ORDER_LIFETIME,
) -> OrderView:
    """Create an order at its provider and keep it; answer what the payer needs."""
    channel = Channel(request.channel)
    if channel is Channel.WECHAT_JSAPI and not request.openid:
        raise Invalid("wechat_jsapi needs the payer's openid")
    client = providers.client(channel.provider)
    now = utcnow().replace(microsecond=0)
    new = NewOrder(
        out_trade_no=new_out_trade_no(now),
        channel=channel,
        amount=validate_order_amount(request.amount),
        description=request.description,
        expires_at=now + lifetime,
        openid=request.openid,
        payer_ip=request.payer_ip,
    )
    # Asked before anything is written: a refused order leaves nothing behind.
    pay_data = await client.start(new)
    order = OrderView.model_validate(
        {
            "out_trade_no": new.out_trade_no,
            "account_id": request.account_id,
            "channel": channel.value,
            "amount": new.amount,
            "status": OrderStatus.PENDING.value,
            "operator": request.operator,
            "created_at": now,
            "expires_at": new.expires_at,
            **pay_data,
        }
    )
    async with service_store.unit_of_work() as uow:
        await orders_store.insert_order(
            uow.session,
            order,
            provider=channel.provider.value,
            next_query_at=next_query_at(now=now, queries_done=0, expires_at=new.expires_at),
        )
    log.info(
        "order %s: %s %s for %s", order.out_trade_no, channel.value, order.amount, order.account_id
    )
    return order


async def get_order(service_store: ServiceStore, *, out_trade_no: str) -> OrderView:
    """Return an order by our trade number."""
    async with service_store.sessionmaker() as session:
        order = await orders_store.order_by_no(session, out_trade_no)
    if order is None:
        raise NotFound(f"order {out_trade_no} does not exist")
    return order


async def raise_issue(
    service_store: ServiceStore,
    *,
    kind: str,
    provider: Provider,
    out_trade_no: str | None,
    reference: str,
    detail: str,
) -> None:
    """Flag something for an operator once, however often the same message says it."""
    issue = PaymentIssue(
        id=f"{kind}:{provider.value}:{out_trade_no}:{reference}"[:200],
        kind=kind,
        provider=provider.value,
        out_trade_no=out_trade_no,
        detail=detail,
        created_at=utcnow(),
    )
    log.warning("payment issue %s: %s", issue.id, detail)
    try:
        async with service_store.unit_of_work() as uow:
            if not await orders_store.issue_exists(uow.session, issue.id):
                await orders_store.insert_issue(uow.session, issue)
                await uow.emit(
                    PaymentIssueV1(
                        issue_id=issue.id,
                        kind=issue.kind,
                        provider=issue.provider,
                        out_trade_no=issue.out_trade_no,
                        detail=issue.detail,
                        at=issue.created_at,
                    )
                )
    except IntegrityError:
        pass  # the same issue, raised by a message running beside this one


async def credit_paid(service_store: ServiceStore, report: PaidReport) -> Credit:
    """Credit the account of an order a provider says was paid, exactly once."""
    try:
        return await _credit_once(service_store, report)
    except IntegrityError:
        # The same transaction, credited by a notification running beside this one.
        return Credit.DUPLICATE


async def _credit_once(service_store: ServiceStore, report: PaidReport) -> Credit:
    async with service_store.unit_of_work() as uow:
        order = await orders_store.order_by_no(uow.session, report.out_trade_no)
        provider = (
            await orders_store.provider_of(uow.session, report.out_trade_no)
            if order is not None
            else None
        )
        problem = _problem(order, provider, report)
        if problem is None and order is not None:
            if order.status not in PAYABLE:
                if order.transaction_id != report.transaction_id:
                    problem = ("paid_twice", f"order already paid by {order.transaction_id}")
                else:
                    return Credit.DUPLICATE
            else:
                payment_id = str(uuid.uuid4())
                if not await orders_store.mark_paid(
                    uow.session, report, payable=PAYABLE, payment_id=payment_id
                ):
                    return Credit.DUPLICATE
                await record_payment(
                    uow,
                    payment_id=payment_id,
                    account_id=order.account_id,
                    amount=order.amount,
                    method=_METHOD[report.provider],
                    reference=report.transaction_id,
                    operator=order.operator,
                    at=report.paid_at,
                )
                log.info(
                    "order %s paid (%s %s): credited %s",
                    report.out_trade_no,
                    report.provider.value,
                    report.transaction_id,
                    order.account_id,
                )
                return Credit.CREDITED
    assert problem is not None
    kind, detail = problem
    await raise_issue(
        service_store,
        kind=kind,
        provider=report.provider,
        out_trade_no=report.out_trade_no,
        reference=report.transaction_id,
        detail=f"{detail}; transaction {report.transaction_id}, paid {report.amount}",
    )
    return Credit.FLAGGED


def _problem(
    order: OrderView | None, provider: str | None, report: PaidReport
) -> tuple[str, str] | None:
    if order is None:
        return "unknown_order", f"no order {report.out_trade_no} was made here"
    if provider != report.provider.value:
        return "wrong_provider", f"order {order.out_trade_no} went to {provider}"
    if not amount_matches(ordered=order.amount, paid=report.amount):
        return "amount_mismatch", f"order {order.out_trade_no} asked {order.amount}"
    return None


async def reconcile_once(
    service_store: ServiceStore, providers: ProviderRegistry, *, now: datetime | None = None
) -> int:
    """Ask the providers about silent pending orders; credit the paid, close the expired."""
    now = now or utcnow()
    async with service_store.sessionmaker() as session:
        silent = await orders_store.silent_orders(session, now=now, limit=RECONCILE_BATCH)
    for order in silent:
        try:
            await _reconcile(service_store, providers, order, now)
        except ServiceError as error:
            # A provider that does not answer now is asked again later; others go on.
            log.warning("order %s: reconciliation failed: %s", order.out_trade_no, error)
        async with service_store.unit_of_work() as uow:
            done = await orders_store.queries_of(uow.session, order.out_trade_no)
            await orders_store.queried(
                uow.session,
                order.out_trade_no,
                next_query_at=next_query_at(
                    now=now, queries_done=done + 1, expires_at=order.expires_at
                ),
            )
    return len(silent)


async def sync_order(
    service_store: ServiceStore, providers: ProviderRegistry, *, out_trade_no: str
) -> OrderView:
    """Ask the provider about one order now (paid: credited once; expired: closed)."""
    order = await get_order(service_store, out_trade_no=out_trade_no)
    if order.status == OrderStatus.PENDING.value:
        await _reconcile(service_store, providers, order, utcnow())
    return await get_order(service_store, out_trade_no=out_trade_no)


async def _reconcile(
    service_store: ServiceStore, providers: ProviderRegistry, order: OrderView, now: datetime
) -> None:
    provider = Channel(order.channel).provider
    client = providers.client(provider)
    answer = await client.query(order.out_trade_no)
    if answer.paid is not None:
        outcome = await credit_paid(service_store, answer.paid)
        log.info("order %s: the provider says paid (query): %s", order.out_trade_no, outcome)
        return
    if answer.closed:
        async with service_store.unit_of_work() as uow:
            await orders_store.change_status(
                uow.session, order.out_trade_no, old=OrderStatus.PENDING, new=OrderStatus.CLOSED
            )
        return
    if now >= order.expires_at:
        # Paid in the meantime, the provider refuses to close it (BadGateway): the order
        # stays pending and the next query finds the payment.
        await client.close(order.out_trade_no)
        async with service_store.unit_of_work() as uow:
            await orders_store.change_status(
                uow.session, order.out_trade_no, old=OrderStatus.PENDING, new=OrderStatus.EXPIRED
            )
        log.info("order %s expired unpaid; closed at %s", order.out_trade_no, provider.value)


async def list_issues(service_store: ServiceStore, *, limit: int, offset: int) -> PaymentIssuePage:
    """Return a page of payment issues for operators, newest first."""
    async with service_store.sessionmaker() as session:
        items = await orders_store.issues_page(session, limit=limit, offset=offset)
    return PaymentIssuePage(items=items, limit=limit, offset=offset)


async def check_bill(
    service_store: ServiceStore, providers: ProviderRegistry, *, provider: Provider, day: date
) -> BillCheck:
    """Compare a provider's bill of a day with our orders; raise an issue per difference."""
    lines = await providers.client(provider).trade_bill(day)
    # The providers' day is Beijing's.
    start = datetime.combine(day, time.min, tzinfo=BEIJING).astimezone(UTC)
    async with service_store.sessionmaker() as session:
        paid = await orders_store.orders_paid_between(
            session, provider=provider.value, start=start, end=start + timedelta(days=1)
        )
        known = await orders_store.orders_by_nos(session, [line.out_trade_no for line in lines])

    def ours(order: OrderView) -> OurPayment:
        return OurPayment(order.out_trade_no, order.transaction_id, order.amount, order.status)

    differences = compare_bill(
        lines,
        {order.out_trade_no: ours(order) for order in paid},
        {order.out_trade_no: ours(order) for order in known},
    )
    for difference in differences:
        await raise_issue(
            service_store,
            kind=f"bill_{difference.kind}",
            provider=provider,
            out_trade_no=difference.out_trade_no,
            reference=day.isoformat(),
            detail=f"{provider.value} bill of {day}: {difference.detail}",
        )
    log.info(
        "%s bill of %s: %d trades, %d differences", provider, day, len(lines), len(differences)
    )
    return BillCheck(
        provider=provider.value,
        day=day,
        trades=len(lines),
        differences=[
            BillDifferenceView(kind=d.kind, out_trade_no=d.out_trade_no, detail=d.detail)
            for d in differences
        ],
    )
