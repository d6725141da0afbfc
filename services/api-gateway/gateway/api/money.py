"""Money an operator moves: arrears, refunds and reversals."""

from __future__ import annotations

from fastapi import APIRouter
from prepaid_common.contracts.api.billing import OperatorMoney, PostedTransaction, ReversalBody

from gateway.api.deps import (
    AdminUser,
    AuditLog,
    Billing,
    PathId,
    StaffUser,
    as_operator,
    ensure_visible,
)

router = APIRouter(tags=["money"])


@router.post("/accounts/{account_id}/arrears", status_code=201)
async def record_arrears(
    principal: StaffUser, billing: Billing, audit: AuditLog, account_id: PathId, body: OperatorMoney
) -> PostedTransaction:
    """Record old debt the tenant owes; it is recovered from top-ups or daily."""
    ensure_visible(principal, account_id)
    _, posted = await billing.post(
        f"/internal/accounts/{account_id}/arrears", json=as_operator(body, principal)
    )
    await audit.record("account.arrears", account_id, body.model_dump(mode="json"))
    return PostedTransaction.model_validate(posted)


@router.post("/accounts/{account_id}/refunds", status_code=201)
async def refund(
    principal: AdminUser, billing: Billing, audit: AuditLog, account_id: PathId, body: OperatorMoney
) -> PostedTransaction:
    """Pay credit back to the tenant (退费); never more than the balance."""
    _, posted = await billing.post(
        f"/internal/accounts/{account_id}/refunds", json=as_operator(body, principal)
    )
    await audit.record("account.refund", account_id, body.model_dump(mode="json"))
    return PostedTransaction.model_validate(posted)


@router.post("/transactions/{transaction_id}/reversal", status_code=201)
async def reverse(
    principal: AdminUser,
    billing: Billing,
    audit: AuditLog,
    transaction_id: PathId,
    body: ReversalBody,
) -> PostedTransaction:
    """Undo a posted transaction with its mirror image (冲正); once per transaction."""
    _, posted = await billing.post(
        f"/internal/transactions/{transaction_id}/reversal", json=as_operator(body, principal)
    )
    await audit.record("transaction.reverse", transaction_id, {"reason": body.reason})
    return PostedTransaction.model_validate(posted)
