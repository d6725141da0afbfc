"""Administration: users and the audit log."""

from __future__ import annotations

from fastapi import APIRouter
from prepaid_common.contracts.api.gateway import AuditPage, UserBody, UserView

from gateway.api.deps import AdminUser, AuditLog, Limit, Offset, Operations

router = APIRouter(tags=["admin"])


@router.post("/users", status_code=201)
async def create_user(
    principal: AdminUser, operations: Operations, audit: AuditLog, body: UserBody
) -> UserView:
    """Create a user; a tenant sees only the listed accounts."""
    await operations.create_user(
        username=body.username,
        password=body.password,
        role=body.role,
        account_ids=body.account_ids,
    )
    await audit.record("user.create", body.username, {"role": body.role})
    return UserView(username=body.username, role=body.role, account_ids=body.account_ids)


@router.get("/audit")
async def audit_log(
    principal: AdminUser, operations: Operations, limit: Limit = 50, offset: Offset = 0
) -> AuditPage:
    """Operator actions, newest first."""
    return await operations.audit_page(limit=limit, offset=offset)
