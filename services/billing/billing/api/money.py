"""Money routes: arrears, refunds, reversals, and the top-up check before money is taken."""

from __future__ import annotations

from fastapi import APIRouter
from prepaid_common.contracts.api.billing import (
    Items,
    OperatorMoney,
    PostedTransaction,
    ReversalBody,
    TopUpAcceptable,
    TopUpCheck,
)

from billing.operations.money import MoneyOperations


def router(money: MoneyOperations) -> APIRouter:
    """Return the money routes."""
    routes = APIRouter(prefix="/internal")

    @routes.post("/accounts/{account_id}/arrears", status_code=201)
    async def record_arrears(account_id: str, body: OperatorMoney) -> PostedTransaction:
        transaction_id = await money.record_arrears(
            account_id=account_id,
            amount=body.amount,
            key=body.key,
            reason=body.reason,
            operator=body.operator,
        )
        return PostedTransaction(transaction_id=transaction_id)

    @routes.post("/accounts/{account_id}/refunds", status_code=201)
    async def refund(account_id: str, body: OperatorMoney) -> PostedTransaction:
        transaction_id = await money.refund(
            account_id=account_id,
            amount=body.amount,
            method=body.method,
            key=body.key,
            reason=body.reason,
            operator=body.operator,
        )
        return PostedTransaction(transaction_id=transaction_id)

    @routes.post("/transactions/{transaction_id}/reversal", status_code=201)
    async def reverse(transaction_id: str, body: ReversalBody) -> PostedTransaction:
        reversal_id = await money.reverse(
            transaction_id=transaction_id, reason=body.reason, operator=body.operator
        )
        return PostedTransaction(transaction_id=reversal_id)

    @routes.get("/reversed-payments")
    async def reversed_payments(payment_ids: str = "") -> Items[str]:
        # Comma-separated payment ids: those whose top-up was reversed are answered.
        ids = [p for p in payment_ids.split(",") if p][:500]
        return Items[str](items=await money.reversed_payments(payment_ids=ids))

    @routes.post("/accounts/{account_id}/top-up-check")
    async def top_up_check(account_id: str, body: TopUpCheck) -> TopUpAcceptable:
        await money.check_top_up(account_id=account_id, amount=body.amount, key=body.key)
        return TopUpAcceptable()

    return routes
