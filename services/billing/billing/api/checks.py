"""Internal checks: the ledger balances and its projection agrees."""

from __future__ import annotations

from fastapi import APIRouter
from prepaid_common.contracts.api.billing import LedgerCheck

from billing.store.queries import BillingQueries


def router(queries: BillingQueries) -> APIRouter:
    """Return the check routes."""
    routes = APIRouter(prefix="/internal")

    @routes.get("/ledger/check")
    async def ledger_check() -> LedgerCheck:
        """The sum of every entry (always zero), any transaction that does not balance, and
        any ledger account whose balance projection differs from the sum of its entries."""
        return await queries.ledger_check()

    return routes
