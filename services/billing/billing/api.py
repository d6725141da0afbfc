"""Billing's internal HTTP API (called by the gateway)."""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, Literal

from fastapi import APIRouter, Query, Response
from prepaid_common.contracts.api.billing import (
    AccountChanges,
    AccountTerms,
    BindMeter,
    HoldBody,
    OpenAccount,
    OperatorMoney,
    ReversalBody,
    ShedBody,
    SwapMeter,
    TariffBody,
    TopUpCheck,
)
from prepaid_common.errors import Invalid, NotFound
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing import purchases
from billing.domain import ledger
from billing.domain.money import ZERO
from billing.domain.supply import SitePolicy
from billing.service import BillingService, arrears_of, balance_of
from billing.tables import (
    account_groups,
    accounts,
    anomalies,
    balances,
    daily_usage,
    entries,
    holds,
    local_meters,
    meter_history,
    meters,
    sheds,
    supply_events,
    tariff_versions,
    tariffs,
    transactions,
)


def _split_ids(raw: str | None) -> list[str] | None:
    if raw is None:
        return None
    ids = [part for part in raw.split(",") if part]
    if len(ids) > 1000:
        raise Invalid("at most 1000 ids per request")
    return ids


def _rows(result: Any) -> list[dict[str, Any]]:
    return [dict(row._mapping) for row in result]


def build_router(service: BillingService) -> APIRouter:
    """Return the internal routes of billing."""
    router = APIRouter(prefix="/internal")
    sessions = service.store.sessionmaker

    async def account_view(session: AsyncSession, row: Any) -> dict[str, Any]:
        bound = (
            await session.execute(
                select(meters.c.meter_id, meters.c.supply)
                .where(meters.c.account_id == row.id)
                .order_by(meters.c.meter_id)
            )
        ).all()
        groups = (
            await session.scalars(
                select(account_groups.c.group_name)
                .where(account_groups.c.account_id == row.id)
                .order_by(account_groups.c.group_name)
            )
        ).all()
        view = dict(row._mapping)
        view.pop("warned")
        supplies = {supply for _, supply in bound}
        view |= {
            "balance": await balance_of(session, row.id),
            "arrears": await arrears_of(session, row.id),
            "meter_ids": [meter_id for meter_id, _ in bound],
            "supply": "off" if "off" in supplies else "on",
            "meters": [{"meter_id": m, "supply": s} for m, s in bound],
            "groups": list(groups),
        }
        return view

    # --- tariffs -----------------------------------------------------------------------
    @router.post("/tariffs", status_code=201)
    async def define_tariff(body: TariffBody) -> dict[str, Any]:
        version_id = await service.define_tariff(
            tariff_id=body.id,
            name=body.name,
            definition=body.definition,
            effective_from=body.effective_from,
            operator=body.operator,
        )
        return {**(await get_tariff(body.id)), "version_id": version_id}

    @router.get("/tariffs")
    async def list_tariffs() -> dict[str, Any]:
        async with sessions() as session:
            rows = (await session.execute(select(tariffs).order_by(tariffs.c.id))).all()
        return {"items": _rows(rows)}

    @router.get("/tariffs/{tariff_id}")
    async def get_tariff(tariff_id: str) -> dict[str, Any]:
        async with sessions() as session:
            row = (await session.execute(select(tariffs).where(tariffs.c.id == tariff_id))).first()
            if row is None:
                raise NotFound(f"tariff {tariff_id} does not exist")
            versions = (
                await session.execute(
                    select(tariff_versions)
                    .where(tariff_versions.c.tariff_id == tariff_id)
                    .order_by(tariff_versions.c.effective_from)
                )
            ).all()
        return {**dict(row._mapping), "versions": _rows(versions)}

    # --- accounts ----------------------------------------------------------------------
    @router.post("/accounts", status_code=201)
    async def open_account(body: OpenAccount, response: Response) -> dict[str, Any]:
        terms = body.model_dump(include=set(AccountTerms.model_fields))
        created = await service.open_account(
            account_id=body.id,
            name=body.name,
            tariff_id=body.tariff_id,
            price_per_kwh=body.price_per_kwh,
            terms=terms,
            groups=body.groups,
            operator=body.operator,
        )
        if not created:
            response.status_code = 200
        return await get_account(body.id)

    @router.patch("/accounts/{account_id}")
    async def change_account(account_id: str, body: AccountChanges) -> dict[str, Any]:
        await service.update_account(account_id, body.model_dump(exclude_unset=True))
        return await get_account(account_id)

    @router.get("/accounts")
    async def list_accounts(
        ids: str | None = None,
        group: str | None = None,
        limit: int = Query(50, ge=1, le=500),
        offset: int = Query(0, ge=0),
    ) -> dict[str, Any]:
        query = select(accounts)
        if (wanted := _split_ids(ids)) is not None:
            query = query.where(accounts.c.id.in_(wanted))
        if group is not None:
            query = query.where(
                accounts.c.id.in_(
                    select(account_groups.c.account_id).where(account_groups.c.group_name == group)
                )
            )
        async with sessions() as session:
            total = await session.scalar(select(func.count()).select_from(query.subquery()))
            rows = (
                await session.execute(query.order_by(accounts.c.id).limit(limit).offset(offset))
            ).all()
            items = [await account_view(session, row) for row in rows]
        return {"items": items, "total": total, "limit": limit, "offset": offset}

    @router.get("/accounts/{account_id}")
    async def get_account(account_id: str) -> dict[str, Any]:
        async with sessions() as session:
            row = (
                await session.execute(select(accounts).where(accounts.c.id == account_id))
            ).first()
            if row is None:
                raise NotFound(f"account {account_id} does not exist")
            return await account_view(session, row)

    @router.post("/accounts/{account_id}/top-up-check")
    async def top_up_check(account_id: str, body: TopUpCheck) -> dict[str, str]:
        await service.check_top_up(account_id, body.amount)
        return {"status": "acceptable"}

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
            await _require_account(session, account_id)
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
            {
                "transaction_id": row.transaction_id,
                "operation_key": row.operation_key,
                "kind": row.kind,
                "memo": row.memo,
                "operator": row.operator,
                "reverses": row.reverses,
                "amount": row.amount,
                "balance_after": row.balance_after,
                "created_at": row.created_at,
            }
            for row in rows
        ]
        return {"items": items, "total": total, "limit": limit, "offset": offset}

    @router.post("/accounts/{account_id}/arrears", status_code=201)
    async def record_arrears(account_id: str, body: OperatorMoney) -> dict[str, str]:
        txn = ledger.record_arrears(
            account_id=account_id,
            amount=body.amount,
            key=body.key,
            reason=body.reason,
            operator=body.operator,
        )
        return {"transaction_id": await service.post_operator_transaction(txn)}

    @router.post("/accounts/{account_id}/refunds", status_code=201)
    async def refund(account_id: str, body: OperatorMoney) -> dict[str, str]:
        txn = ledger.refund(
            account_id=account_id,
            amount=body.amount,
            method=body.method,
            key=body.key,
            reason=body.reason,
            operator=body.operator,
        )
        return {"transaction_id": await service.post_operator_transaction(txn)}

    @router.post("/transactions/{transaction_id}/reversal", status_code=201)
    async def reverse(transaction_id: str, body: ReversalBody) -> dict[str, str]:
        return {
            "transaction_id": await service.reverse(
                transaction_id, reason=body.reason, operator=body.operator
            )
        }

    # --- meters ------------------------------------------------------------------------
    @router.post("/meter-bindings", status_code=201)
    async def bind_meter(body: BindMeter, response: Response) -> dict[str, Any]:
        created = await service.bind_meter(
            meter_id=body.meter_id,
            account_id=body.account_id,
            multiplier=body.multiplier,
            tariff_id=body.tariff_id,
            operator=body.operator,
            local_prepaid=body.local_prepaid,
            local_price=body.local_price,
        )
        if not created:
            response.status_code = 200
        async with sessions() as session:
            local = (
                await session.execute(
                    select(local_meters.c.price).where(local_meters.c.meter_id == body.meter_id)
                )
            ).first()
        return {
            "meter_id": body.meter_id,
            "account_id": body.account_id,
            "local_prepaid": local is not None,
            "local_price": None if local is None else local.price,
        }

    @router.get("/meter-bindings")
    async def list_bindings(
        meter_ids: str | None = None, account_ids: str | None = None
    ) -> dict[str, Any]:
        query = (
            select(
                meters.c.meter_id,
                meters.c.account_id,
                meters.c.supply,
                meters.c.multiplier,
                local_meters.c.meter_id.is_not(None).label("local_prepaid"),
                local_meters.c.price.label("local_price"),
            )
            .outerjoin(local_meters, local_meters.c.meter_id == meters.c.meter_id)
            .order_by(meters.c.meter_id)
        )
        if (wanted := _split_ids(meter_ids)) is not None:
            query = query.where(meters.c.meter_id.in_(wanted))
        if (owners := _split_ids(account_ids)) is not None:
            query = query.where(meters.c.account_id.in_(owners))
        async with sessions() as session:
            rows = (await session.execute(query)).all()
        return {"items": _rows(rows)}

    @router.post("/meters/{meter_id}/swap")
    async def swap_meter(meter_id: str, body: SwapMeter) -> dict[str, Any]:
        await service.swap_meter(
            old_meter_id=meter_id,
            new_meter_id=body.new_meter_id,
            old_final_kwh=body.old_final_kwh,
            new_start_kwh=body.new_start_kwh,
            operator=body.operator,
        )
        return await meter_history_of(body.new_meter_id)

    @router.get("/meters/{meter_id}/local-credit")
    async def local_credit(meter_id: str, limit: int = Query(50, ge=1, le=500)) -> dict[str, Any]:
        async with sessions() as session:
            return await purchases.local_credit_view(session, meter_id, limit=limit)

    @router.post("/meters/{meter_id}/local-credit/resync")
    async def resync_local_credit(meter_id: str) -> dict[str, Any]:
        async with service.store.unit_of_work() as uow:
            await purchases.resync(uow, meter_id)
        return await local_credit(meter_id, limit=50)

    @router.get("/meters/{meter_id}/history")
    async def meter_history_of(meter_id: str) -> dict[str, Any]:
        async with sessions() as session:
            rows = (
                await session.execute(
                    select(meter_history)
                    .where(meter_history.c.meter_id == meter_id)
                    .order_by(meter_history.c.id)
                )
            ).all()
        return {"items": _rows(rows)}

    @router.get("/supply-events")
    async def list_supply_events(
        meter_id: str | None = None,
        account_id: str | None = None,
        limit: int = Query(50, ge=1, le=500),
        offset: int = Query(0, ge=0),
    ) -> dict[str, Any]:
        query = select(supply_events).order_by(supply_events.c.id.desc())
        if meter_id is not None:
            query = query.where(supply_events.c.meter_id == meter_id)
        if account_id is not None:
            query = query.where(supply_events.c.account_id == account_id)
        async with sessions() as session:
            rows = (await session.execute(query.limit(limit).offset(offset))).all()
        return {"items": _rows(rows), "limit": limit, "offset": offset}

    # --- holds, shedding, policy -------------------------------------------------------
    @router.post("/holds", status_code=201)
    async def place_hold(body: HoldBody) -> dict[str, str]:
        hold_id = await service.place_hold(
            scope=body.scope,
            target=body.target,
            until=body.until,
            reason=body.reason,
            operator=body.operator,
        )
        return {"id": hold_id}

    @router.delete("/holds/{hold_id}", status_code=204)
    async def release_hold(hold_id: str) -> Response:
        await service.release_hold(hold_id)
        return Response(status_code=204)

    @router.get("/holds")
    async def list_holds() -> dict[str, Any]:
        async with sessions() as session:
            rows = (
                await session.execute(
                    select(holds).where(holds.c.released_at.is_(None)).order_by(holds.c.created_at)
                )
            ).all()
        return {"items": _rows(rows)}

    @router.post("/sheds", status_code=201)
    async def start_shed(body: ShedBody) -> dict[str, str]:
        return {
            "id": await service.start_shed(
                group=body.group, reason=body.reason, operator=body.operator
            )
        }

    @router.delete("/sheds/{shed_id}", status_code=204)
    async def end_shed(shed_id: str) -> Response:
        await service.end_shed(shed_id)
        return Response(status_code=204)

    @router.get("/sheds")
    async def list_sheds() -> dict[str, Any]:
        async with sessions() as session:
            rows = (
                await session.execute(select(sheds).order_by(sheds.c.started_at.desc()).limit(200))
            ).all()
        return {"items": _rows(rows)}

    @router.get("/policy")
    async def get_policy() -> SitePolicy:
        async with sessions() as session:
            return await service.policy(session)

    @router.put("/policy")
    async def put_policy(body: SitePolicy) -> SitePolicy:
        await service.set_policy(body)
        return body

    # --- data for people: usage, statements, dunning, anomalies ------------------------
    @router.get("/usage")
    async def usage(
        meter_id: str | None = None,
        account_id: str | None = None,
        start: date | None = Query(None, alias="from"),
        end: date | None = Query(None, alias="to"),
        granularity: Literal["day", "month"] = "day",
    ) -> dict[str, Any]:
        if (meter_id is None) == (account_id is None):
            raise Invalid("give exactly one of meter_id or account_id")
        period = daily_usage.c.day if granularity == "day" else func.substr(daily_usage.c.day, 1, 7)
        query = select(
            period.label("period"),
            func.sum(daily_usage.c.metered_kwh).label("metered_kwh"),
            func.sum(daily_usage.c.billed_kwh).label("billed_kwh"),
            func.sum(daily_usage.c.cost).label("cost"),
        ).group_by(period)
        if meter_id is not None:
            query = query.where(daily_usage.c.meter_id == meter_id)
        else:
            query = query.where(daily_usage.c.account_id == account_id)
        if start is not None:
            query = query.where(daily_usage.c.day >= start.isoformat())
        if end is not None:
            query = query.where(daily_usage.c.day <= end.isoformat())
        async with sessions() as session:
            rows = (await session.execute(query.order_by(period))).all()
        return {"items": _rows(rows), "granularity": granularity}

    @router.get("/accounts/{account_id}/statements/{month}")
    async def statement(account_id: str, month: str) -> dict[str, Any]:
        """Monthly statement: opening, movements by kind, closing, arrears, amount due."""
        try:
            first = date.fromisoformat(f"{month}-01")
        except ValueError as error:
            raise Invalid("month must be YYYY-MM") from error
        following = date(first.year + (first.month == 12), first.month % 12 + 1, 1)
        async with sessions() as session:
            account = await _require_account(session, account_id)
            zone = (await service.policy(session)).zone
            start = datetime.combine(first, time(0), zone)
            end = datetime.combine(following, time(0), zone)
            tenant = ledger.tenant_ledger(account_id)
            opening = await _ledger_sum(session, tenant, before=start)
            closing = await _ledger_sum(session, tenant, before=end)
            arrears_closing = await _ledger_sum(
                session, ledger.arrears_ledger(account_id), before=end
            )
            movements = (
                await session.execute(
                    select(transactions.c.kind, func.sum(entries.c.amount).label("amount"))
                    .join(entries, entries.c.transaction_id == transactions.c.id)
                    .where(
                        entries.c.ledger_account == tenant,
                        transactions.c.created_at >= start,
                        transactions.c.created_at < end,
                    )
                    .group_by(transactions.c.kind)
                    .order_by(transactions.c.kind)
                )
            ).all()
            energy = await session.scalar(
                select(func.sum(daily_usage.c.metered_kwh)).where(
                    daily_usage.c.account_id == account_id,
                    daily_usage.c.day >= first.isoformat(),
                    daily_usage.c.day < following.isoformat(),
                )
            )
        due = max(ZERO, -closing) + max(ZERO, -arrears_closing)
        return {
            "account_id": account_id,
            "name": account.name,
            "mode": account.mode,
            "month": month,
            "opening_balance": opening,
            "movements": {row.kind: row.amount for row in movements},
            "closing_balance": closing,
            "arrears": arrears_closing,
            "energy_kwh": energy or ZERO,
            "amount_due": due.quantize(Decimal("0.01")),
        }

    @router.get("/dunning")
    async def dunning() -> dict[str, Any]:
        """Accounts that owe money (催缴单): a negative balance or unpaid arrears."""
        async with sessions() as session:
            rows = (await session.execute(select(accounts).order_by(accounts.c.id))).all()
            items = []
            for row in rows:
                balance = await balance_of(session, row.id)
                arrears = await arrears_of(session, row.id)
                due = max(ZERO, -balance) + max(ZERO, -arrears)
                if due > 0:
                    items.append(
                        {
                            "account_id": row.id,
                            "name": row.name,
                            "mode": row.mode,
                            "balance": balance,
                            "arrears": arrears,
                            "amount_due": due.quantize(Decimal("0.01")),
                        }
                    )
        return {"items": items}

    @router.get("/anomalies")
    async def list_anomalies(
        meter_id: str | None = None,
        kind: str | None = None,
        limit: int = Query(50, ge=1, le=500),
        offset: int = Query(0, ge=0),
    ) -> dict[str, Any]:
        query = select(anomalies).order_by(anomalies.c.id.desc()).limit(limit).offset(offset)
        if meter_id is not None:
            query = query.where(anomalies.c.meter_id == meter_id)
        if kind is not None:
            query = query.where(anomalies.c.kind == kind)
        async with sessions() as session:
            rows = (await session.execute(query)).all()
        return {"items": _rows(rows), "limit": limit, "offset": offset}

    @router.get("/ledger/check")
    async def ledger_check() -> dict[str, Any]:
        """The sum of every entry (always zero), any transaction that does not balance, and
        any ledger account whose balance projection differs from the sum of its entries."""
        async with sessions() as session:
            total = await session.scalar(select(func.sum(entries.c.amount)))
            unbalanced = (
                await session.scalars(
                    select(entries.c.transaction_id)
                    .group_by(entries.c.transaction_id)
                    .having(func.sum(entries.c.amount) != Decimal(0))
                )
            ).all()
            summed = dict(
                (
                    await session.execute(
                        select(entries.c.ledger_account, func.sum(entries.c.amount)).group_by(
                            entries.c.ledger_account
                        )
                    )
                ).all()
            )
            projected = dict(
                (await session.execute(select(balances.c.ledger_account, balances.c.balance))).all()
            )
        mismatched = sorted(
            name
            for name in summed.keys() | projected.keys()
            if summed.get(name, ZERO) != projected.get(name, ZERO)
        )
        return {
            "sum": total if total is not None else Decimal("0.00"),
            "unbalanced": unbalanced,
            "projection_mismatches": mismatched,
        }

    return router


async def _require_account(session: AsyncSession, account_id: str) -> Any:
    row = (await session.execute(select(accounts).where(accounts.c.id == account_id))).first()
    if row is None:
        raise NotFound(f"account {account_id} does not exist")
    return row


async def _ledger_sum(session: AsyncSession, ledger_account: str, *, before: datetime) -> Decimal:
    total: Decimal | None = await session.scalar(
        select(func.sum(entries.c.amount))
        .join(transactions, transactions.c.id == entries.c.transaction_id)
        .where(entries.c.ledger_account == ledger_account, transactions.c.created_at < before)
    )
    return total if total is not None else Decimal("0.00")
