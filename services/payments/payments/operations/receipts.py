"""Money received, whatever the way: one payment row and its message, in one unit of work."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from prepaid_common.contracts import PaymentSucceededV1, utcnow
from prepaid_common.contracts.api.payments import PaymentView
from prepaid_common.outbox import UnitOfWork

from payments import store

Method = Literal["cash", "wechat", "alipay"]


async def record_payment(
    uow: UnitOfWork,
    *,
    payment_id: str,
    account_id: str,
    amount: Decimal,
    method: Method,
    reference: str,
    operator: str,
    at: datetime | None = None,
) -> PaymentView:
    """Write the payment (unique per method and reference) and announce it to billing."""
    payment = PaymentView(
        id=payment_id,
        account_id=account_id,
        amount=amount,
        method=method,
        reference=reference,
        operator=operator,
        status="succeeded",
        created_at=utcnow(),
    )
    await store.insert_payment(uow.session, payment)
    await uow.emit(
        PaymentSucceededV1(
            payment_id=payment.id,
            account_id=account_id,
            amount=amount,
            method=method,
            reference=reference,
            at=at or payment.created_at,
            operator=operator,
        )
    )
    return payment
