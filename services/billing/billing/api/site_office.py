"""The site office's routes: profiles and search, readings history, move-out and transfer,
cashier shifts, receipts, postpaid terms and bills, apportionment rules and runs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from prepaid_common.contracts.api.billing import Items
from prepaid_common.contracts.api.receipts import PaymentReceipt, ReceiptRequest
from prepaid_common.contracts.api.site_office import (
    AccountClosed,
    ApportionmentRule,
    ApportionmentRuleBody,
    ApportionmentRun,
    ApportionmentRunBody,
    MoveOutBody,
    PostpaidBill,
    PostpaidTerms,
    ReadingPage,
    ShiftCloseBody,
    ShiftView,
    TenantPage,
    TenantProfile,
    TransferBody,
)
from prepaid_common.errors import NotFound

from billing.operations.site_office import SiteOfficeOperations
from billing.store import accounts as account_store
from billing.store import site_office as site_store
from billing.store.queries import BillingQueries


def router(office: SiteOfficeOperations, queries: BillingQueries) -> APIRouter:
    """Return the site office's routes."""
    routes = APIRouter(prefix="/internal")
    sessions = queries.sessions

    @routes.post("/receipts")
    async def receipt(body: ReceiptRequest) -> PaymentReceipt:
        # A read: the payment comes from payments (through the gateway), the rest from here.
        return await office.receipt(payment=body)

    @routes.put("/accounts/{account_id}/profile")
    async def set_profile(account_id: str, body: TenantProfile) -> TenantProfile:
        return await office.set_profile(account_id=account_id, profile=body)

    @routes.get("/accounts/{account_id}/profile")
    async def profile(account_id: str) -> TenantProfile:
        async with sessions() as session:
            await account_store.require_account(session, account_id)
            return await site_store.profile_of(session, account_id)

    @routes.get("/tenants")
    async def tenants(
        q: Annotated[str | None, Query(max_length=100)] = None,
        building: Annotated[str | None, Query(max_length=100)] = None,
        floor: Annotated[str | None, Query(max_length=100)] = None,
        room: Annotated[str | None, Query(max_length=100)] = None,
        include_closed: bool = False,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    ) -> TenantPage:
        async with sessions() as session:
            return await site_store.tenant_page(
                session,
                text=q,
                building=building,
                floor=floor,
                room=room,
                include_closed=include_closed,
                limit=limit,
                offset=offset,
            )

    @routes.get("/meters/{meter_id}/readings")
    async def readings(
        meter_id: str,
        since: datetime | None = None,
        before: datetime | None = None,
        for_account: str | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> ReadingPage:
        async with sessions() as session:
            if for_account is not None:
                # A tenant sees their own meter's readings, and only since it became theirs.
                binding = await site_store.bound_since(session, meter_id)
                if binding is None or binding[0] != for_account:
                    raise NotFound(f"meter {meter_id} does not exist")
                since = binding[1] if since is None else max(since, binding[1])
            return await site_store.reading_page(
                session, meter_id, since=since, before=before, limit=limit
            )

    @routes.post("/accounts/{account_id}/move-out")
    async def move_out(account_id: str, body: MoveOutBody) -> AccountClosed:
        return await office.move_out(account_id=account_id, body=body)

    @routes.post("/accounts/{account_id}/transfer")
    async def transfer(account_id: str, body: TransferBody) -> AccountClosed:
        return await office.transfer(account_id=account_id, body=body)

    @routes.get("/cashier-shifts/open")
    async def open_shift(cashier: Annotated[str, Query(min_length=1, max_length=64)]) -> ShiftView:
        return await office.shift_figures(cashier=cashier)

    @routes.post("/cashier-shifts", status_code=201)
    async def close_shift(body: ShiftCloseBody) -> ShiftView:
        return await office.close_shift(
            cashier=body.operator, counted_cash=body.counted_cash, note=body.note
        )

    @routes.get("/cashier-shifts")
    async def shifts(
        cashier: Annotated[str | None, Query(max_length=64)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> Items[ShiftView]:
        async with sessions() as session:
            return Items[ShiftView](items=await site_store.shifts(session, cashier, limit=limit))

    @routes.put("/accounts/{account_id}/postpaid-terms")
    async def set_terms(account_id: str, body: PostpaidTerms) -> PostpaidTerms:
        return await office.set_postpaid_terms(account_id=account_id, terms=body)

    @routes.get("/accounts/{account_id}/postpaid-bill")
    async def bill(account_id: str) -> PostpaidBill:
        return await office.postpaid_bill(account_id=account_id)

    @routes.post("/apportionment-rules", status_code=201)
    async def define_rule(body: ApportionmentRuleBody) -> ApportionmentRule:
        return await office.define_rule(body=body)

    @routes.get("/apportionment-rules")
    async def rules() -> Items[ApportionmentRule]:
        async with sessions() as session:
            return Items[ApportionmentRule](items=await site_store.rules(session))

    @routes.post("/apportionment-rules/{rule_id}/runs", status_code=201)
    async def run_rule(rule_id: str, body: ApportionmentRunBody) -> ApportionmentRun:
        return await office.run_rule(rule_id=rule_id, month=body.month, operator=body.operator)

    return routes
