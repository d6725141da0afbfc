"""The payments service's internal API: routes only, each calling one operation."""

from __future__ import annotations

from fastapi import APIRouter, Query
from prepaid_common.contracts.api.payments import PaymentPage, PaymentView, TopUpRequest
from prepaid_common.outbox import ServiceStore

from payments import operations


def internal_router(store: ServiceStore) -> APIRouter:
    """Return the routes the gateway calls, bound to the service's store."""
    router = APIRouter(prefix="/internal")

    @router.post("/top-ups", status_code=201)
    async def top_up(body: TopUpRequest) -> PaymentView:
        return await operations.record_counter_top_up(store, request=body)

    @router.get("/payments")
    async def list_for_account(
        account_id: str,
        limit: int = Query(50, ge=1, le=500),
        offset: int = Query(0, ge=0),
    ) -> PaymentPage:
        return await operations.list_payments(
            store, account_id=account_id, limit=limit, offset=offset
        )

    return router
