"""The payments table's SQL: one payment per (method, reference), an account's payments."""

from __future__ import annotations

from typing import Any

from prepaid_common.contracts.api.payments import PaymentView
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from payments.tables import payments


async def payment_by_reference(
    session: AsyncSession, *, method: str, reference: str
) -> PaymentView | None:
    """Return the payment taken under a reference (a receipt number, say), or None."""
    row = (
        await session.execute(
            select(payments).where(payments.c.method == method, payments.c.reference == reference)
        )
    ).first()
    return None if row is None else PaymentView(**row._mapping)


async def payment_by_id(session: AsyncSession, payment_id: str) -> PaymentView | None:
    """Return a payment by its id, or None."""
    row = (await session.execute(select(payments).where(payments.c.id == payment_id))).first()
    return None if row is None else PaymentView(**row._mapping)


async def insert_payment(session: AsyncSession, payment: PaymentView) -> None:
    """Write a new payment (the unique reference refuses a second one)."""
    row: dict[str, Any] = payment.model_dump(exclude={"replayed"})
    await session.execute(insert(payments).values(**row))


async def payments_of_account(
    session: AsyncSession, *, account_id: str, limit: int, offset: int
) -> list[PaymentView]:
    """Return a page of an account's payments, newest first."""
    rows = await session.execute(
        select(payments)
        .where(payments.c.account_id == account_id)
        .order_by(payments.c.created_at.desc(), payments.c.id)
        .limit(limit)
        .offset(offset)
    )
    return [PaymentView(**row._mapping) for row in rows]
