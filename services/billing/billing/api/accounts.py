"""Account routes: open, change, list and view accounts; an account's ledger."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response
from prepaid_common.contracts.api.billing import (
    AccountChanges,
    AccountTerms,
    AccountView,
    LedgerLine,
    OpenAccount,
    Page,
)

from billing.api.ids import split_ids
from billing.operations.accounts import AccountOperations
from billing.store.queries import BillingQueries


def router(accounts: AccountOperations, queries: BillingQueries) -> APIRouter:
    """Return the account routes."""
    routes = APIRouter(prefix="/internal")

    @routes.post("/accounts", status_code=201)
    async def open_account(body: OpenAccount, response: Response) -> AccountView:
        created = await accounts.open_account(
            account_id=body.id,
            name=body.name,
            tariff_id=body.tariff_id,
            price_per_kwh=body.price_per_kwh,
            terms=AccountTerms.model_validate(
                body.model_dump(include=set(AccountTerms.model_fields))
            ),
            groups=body.groups,
            operator=body.operator,
        )
        if not created:
            response.status_code = 200
        return await queries.account(body.id)

    @routes.patch("/accounts/{account_id}")
    async def change_account(account_id: str, body: AccountChanges) -> AccountView:
        await accounts.update_account(account_id=account_id, changes=body)
        return await queries.account(account_id)

    @routes.get("/accounts")
    async def list_accounts(
        ids: str | None = None,
        group: str | None = None,
        limit: int = Query(50, ge=1, le=500),
        offset: int = Query(0, ge=0),
    ) -> Page[AccountView]:
        return await queries.accounts(ids=split_ids(ids), group=group, limit=limit, offset=offset)

    @routes.get("/accounts/{account_id}")
    async def get_account(account_id: str) -> AccountView:
        return await queries.account(account_id)

    @routes.get("/accounts/{account_id}/ledger")
    async def account_ledger(
        account_id: str,
        limit: int = Query(50, ge=1, le=500),
        offset: int = Query(0, ge=0),
    ) -> Page[LedgerLine]:
        return await queries.ledger(account_id, limit=limit, offset=offset)

    return routes
