"""The payments service: takes money in and tells billing once, exactly."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query
from prepaid_common.contracts import PaymentSucceededV1, utcnow
from prepaid_common.contracts.api.payments import PaymentView, TopUpRequest
from prepaid_common.service import Service
from sqlalchemy import insert, select

from payments import domain
from payments.tables import metadata, payments, plumbing


class PaymentsService(Service):
    name = "payments"
    migrations_dir = Path(__file__).parent / "migrations"
    tables = plumbing
    metadata = metadata

    async def record_counter_top_up(self, top_up: domain.CounterTopUp) -> PaymentView:
        """Record a cash top-up once per receipt and announce it to billing."""
        async with self.store.unit_of_work() as uow:
            existing = (
                await uow.session.execute(
                    select(payments).where(
                        payments.c.method == "cash", payments.c.reference == top_up.receipt
                    )
                )
            ).first()
            if existing is not None:
                domain.check_replay(existing.account_id, existing.amount, top_up)
                return PaymentView(**existing._mapping, replayed=True)
            row: dict[str, Any] = {
                "id": str(uuid.uuid4()),
                "account_id": top_up.account_id,
                "amount": top_up.amount,
                "method": "cash",
                "reference": top_up.receipt,
                "operator": top_up.operator,
                "status": "succeeded",
                "created_at": utcnow(),
            }
            await uow.session.execute(insert(payments).values(**row))
            await uow.emit(
                PaymentSucceededV1(
                    payment_id=row["id"],
                    account_id=top_up.account_id,
                    amount=top_up.amount,
                    method="cash",
                    reference=top_up.receipt,
                    at=row["created_at"],
                )
            )
        return PaymentView(**row)

    async def list_payments(self, account_id: str, limit: int, offset: int) -> list[PaymentView]:
        """Return an account's payments, newest first."""
        async with self.store.sessionmaker() as session:
            rows = await session.execute(
                select(payments)
                .where(payments.c.account_id == account_id)
                .order_by(payments.c.created_at.desc(), payments.c.id)
                .limit(limit)
                .offset(offset)
            )
            return [PaymentView(**row._mapping) for row in rows]

    def routers(self) -> Sequence[APIRouter]:
        router = APIRouter(prefix="/internal")

        @router.post("/top-ups", status_code=201)
        async def top_up(body: TopUpRequest) -> PaymentView:
            return await self.record_counter_top_up(
                domain.CounterTopUp(
                    account_id=body.account_id,
                    amount=domain.validate_amount(body.amount),
                    receipt=domain.validate_receipt(body.receipt),
                    operator=body.operator,
                )
            )

        @router.get("/payments")
        async def list_for_account(
            account_id: str,
            limit: int = Query(50, ge=1, le=500),
            offset: int = Query(0, ge=0),
        ) -> dict[str, Any]:
            items = await self.list_payments(account_id, limit, offset)
            return {"items": items, "limit": limit, "offset": offset}

        return [router]
