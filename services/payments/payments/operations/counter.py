"""Cash at the counter: one payment per receipt, announced to billing once."""

from __future__ import annotations

import uuid

from prepaid_common.contracts.api.payments import PaymentPage, PaymentView, TopUpRequest
from prepaid_common.errors import NotFound
from prepaid_common.outbox import ServiceStore
from sqlalchemy.exc import IntegrityError

from payments import domain, store
from payments.operations.receipts import Method, record_payment

COUNTER: Method = "cash"


async def record_counter_top_up(
    service_store: ServiceStore, *, request: TopUpRequest
) -> PaymentView:
    """Record a cash top-up once per receipt and announce it to billing."""
    top_up = domain.CounterTopUp(
        account_id=request.account_id,
        amount=domain.validate_amount(request.amount),
        receipt=domain.validate_receipt(request.receipt),
        operator=request.operator,
    )
    try:
        return await _take_once(service_store, top_up)
    except IntegrityError:
        # The same receipt, taken by a request running beside this one, committed first:
        # answer what that request got.
        async with service_store.sessionmaker() as session:
            existing = await store.payment_by_reference(
                session, method=COUNTER, reference=top_up.receipt
            )
        if existing is None:
            raise
        return _replayed(existing, top_up)


async def _take_once(service_store: ServiceStore, top_up: domain.CounterTopUp) -> PaymentView:
    async with service_store.unit_of_work() as uow:
        existing = await store.payment_by_reference(
            uow.session, method=COUNTER, reference=top_up.receipt
        )
        if existing is not None:
            return _replayed(existing, top_up)
        payment = await record_payment(
            uow,
            payment_id=str(uuid.uuid4()),
            account_id=top_up.account_id,
            amount=top_up.amount,
            method=COUNTER,
            reference=top_up.receipt,
            operator=top_up.operator,
        )
    return payment


def _replayed(existing: PaymentView, top_up: domain.CounterTopUp) -> PaymentView:
    domain.check_replay(existing.account_id, existing.amount, top_up)
    return existing.model_copy(update={"replayed": True})


async def list_payments(
    service_store: ServiceStore, *, account_id: str, limit: int, offset: int
) -> PaymentPage:
    """Return a page of an account's payments, newest first."""
    async with service_store.sessionmaker() as session:
        items = await store.payments_of_account(
            session, account_id=account_id, limit=limit, offset=offset
        )
    return PaymentPage(items=items, limit=limit, offset=offset)


async def get_payment(service_store: ServiceStore, *, payment_id: str) -> PaymentView:
    """Return one payment, whatever the way it came; NotFound if there is none."""
    async with service_store.sessionmaker() as session:
        payment = await store.payment_by_id(session, payment_id)
    if payment is None:
        raise NotFound(f"payment {payment_id} does not exist")
    return payment
