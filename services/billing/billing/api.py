"""Billing's internal HTTP API (called by the gateway)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Query, Response
from prepaid_common.errors import Invalid, NotFound
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from billing.domain import ledger
from billing.service import BillingService, balance_of
from billing.tables import accounts, anomalies, entries, meters, transactions

MoneyField = Field(max_digits=14, decimal_places=2)


class OpenAccount(BaseModel):
    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    name: str = Field(min_length=1, max_length=200)
    price_per_kwh: Decimal = Field(gt=0, max_digits=10, decimal_places=4)
    trip_line: Decimal = Field(default=Decimal("0.00"), max_digits=14, decimal_places=2)
    warning_line: Decimal = Field(default=Decimal("10.00"), max_digits=14, decimal_places=2)


class AccountView(BaseModel):
    id: str
    name: str
    balance: Decimal
    price_per_kwh: Decimal
    trip_line: Decimal
    warning_line: Decimal
    supply: str
    meter_ids: list[str]
    created_at: datetime


class BindMeter(BaseModel):
    meter_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    account_id: str = Field(min_length=1, max_length=64)


class LedgerLine(BaseModel):
    transaction_id: str
    operation_key: str
    kind: str
    memo: str
    amount: Decimal
    balance_after: Decimal
    created_at: datetime


def _split_ids(raw: str | None) -> list[str] | None:
    if raw is None:
        return None
    ids = [part for part in raw.split(",") if part]
    if len(ids) > 1000:
        raise Invalid("at most 1000 ids per request")
    return ids


def build_router(service: BillingService) -> APIRouter:
    """Return the internal routes of billing."""
    router = APIRouter(prefix="/internal")
    sessions = service.store.sessionmaker

    async def account_view(session: Any, row: Any) -> AccountView:
        meter_ids = (
            await session.scalars(
                select(meters.c.meter_id)
                .where(meters.c.account_id == row.id)
                .order_by(meters.c.meter_id)
            )
        ).all()
        return AccountView(
            id=row.id,
            name=row.name,
            balance=await balance_of(session, row.id),
            price_per_kwh=row.price_per_kwh,
            trip_line=row.trip_line,
            warning_line=row.warning_line,
            supply=row.supply,
            meter_ids=list(meter_ids),
            created_at=row.created_at,
        )

    @router.post("/accounts", status_code=201)
    async def open_account(body: OpenAccount, response: Response) -> AccountView:
        created = await service.open_account(
            account_id=body.id,
            name=body.name,
            price_per_kwh=body.price_per_kwh,
            trip_line=body.trip_line,
            warning_line=body.warning_line,
        )
        if not created:
            response.status_code = 200
        return await get_account(body.id)

    @router.get("/accounts")
    async def list_accounts(
        ids: str | None = None,
        limit: int = Query(50, ge=1, le=500),
        offset: int = Query(0, ge=0),
    ) -> dict[str, Any]:
        wanted = _split_ids(ids)
        query = select(accounts)
        count = select(func.count()).select_from(accounts)
        if wanted is not None:
            query = query.where(accounts.c.id.in_(wanted))
            count = count.where(accounts.c.id.in_(wanted))
        async with sessions() as session:
            total = await session.scalar(count)
            rows = (
                await session.execute(query.order_by(accounts.c.id).limit(limit).offset(offset))
            ).all()
            items = [await account_view(session, row) for row in rows]
        return {"items": items, "total": total, "limit": limit, "offset": offset}

    @router.get("/accounts/{account_id}")
    async def get_account(account_id: str) -> AccountView:
        async with sessions() as session:
            row = (
                await session.execute(select(accounts).where(accounts.c.id == account_id))
            ).first()
            if row is None:
                raise NotFound(f"account {account_id} does not exist")
            return await account_view(session, row)

    @router.get("/accounts/{account_id}/ledger")
    async def account_ledger(
        account_id: str,
        limit: int = Query(50, ge=1, le=500),
        offset: int = Query(0, ge=0),
    ) -> dict[str, Any]:
        tenant = ledger.tenant_ledger(account_id)
        running = (
            select(
                entries.c.id,
                entries.c.transaction_id,
                entries.c.amount,
                func.sum(entries.c.amount).over(order_by=entries.c.id).label("balance_after"),
            )
            .where(entries.c.ledger_account == tenant)
            .subquery()
        )
        async with sessions() as session:
            if (
                await session.execute(select(accounts.c.id).where(accounts.c.id == account_id))
            ).first() is None:
                raise NotFound(f"account {account_id} does not exist")
            total = await session.scalar(
                select(func.count()).select_from(entries).where(entries.c.ledger_account == tenant)
            )
            rows = (
                await session.execute(
                    select(running, transactions)
                    .join(transactions, transactions.c.id == running.c.transaction_id)
                    .order_by(running.c.id.desc())
                    .limit(limit)
                    .offset(offset)
                )
            ).all()
        items = [
            LedgerLine(
                transaction_id=row.transaction_id,
                operation_key=row.operation_key,
                kind=row.kind,
                memo=row.memo,
                amount=row.amount,
                balance_after=row.balance_after,
                created_at=row.created_at,
            )
            for row in rows
        ]
        return {"items": items, "total": total, "limit": limit, "offset": offset}

    @router.post("/meter-bindings", status_code=201)
    async def bind_meter(body: BindMeter, response: Response) -> dict[str, str]:
        if not await service.bind_meter(meter_id=body.meter_id, account_id=body.account_id):
            response.status_code = 200
        return {"meter_id": body.meter_id, "account_id": body.account_id}

    @router.get("/meter-bindings")
    async def list_bindings(
        meter_ids: str | None = None, account_ids: str | None = None
    ) -> dict[str, Any]:
        query = select(meters.c.meter_id, meters.c.account_id).order_by(meters.c.meter_id)
        if (wanted := _split_ids(meter_ids)) is not None:
            query = query.where(meters.c.meter_id.in_(wanted))
        if (owners := _split_ids(account_ids)) is not None:
            query = query.where(meters.c.account_id.in_(owners))
        async with sessions() as session:
            rows = (await session.execute(query)).all()
        return {"items": [{"meter_id": r.meter_id, "account_id": r.account_id} for r in rows]}

    @router.get("/anomalies")
    async def list_anomalies(
        meter_id: str | None = None,
        limit: int = Query(50, ge=1, le=500),
        offset: int = Query(0, ge=0),
    ) -> dict[str, Any]:
        query = select(anomalies).order_by(anomalies.c.id.desc()).limit(limit).offset(offset)
        if meter_id is not None:
            query = query.where(anomalies.c.meter_id == meter_id)
        async with sessions() as session:
            rows = (await session.execute(query)).all()
        return {
            "items": [dict(row._mapping) for row in rows],
            "limit": limit,
            "offset": offset,
        }

    @router.get("/ledger/check")
    async def ledger_check() -> dict[str, Any]:
        """Return the sum of every entry (always zero) and per-transaction imbalances."""
        async with sessions() as session:
            total = await session.scalar(select(func.sum(entries.c.amount)))
            unbalanced = (
                await session.scalars(
                    select(entries.c.transaction_id)
                    .group_by(entries.c.transaction_id)
                    .having(func.sum(entries.c.amount) != Decimal(0))
                )
            ).all()
        return {"sum": total if total is not None else Decimal("0.00"), "unbalanced": unbalanced}

    return router
