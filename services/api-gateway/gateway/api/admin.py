"""Administration: users (create, list, disable, delete, reset a password) and the audit log."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prepaid_common.contracts.api.gateway import (
    AuditPage,
    NewPassword,
    UserBody,
    UserChanges,
    UserPage,
    UserView,
)

from gateway.api.deps import AdminUser, AuditLog, Billing, Limit, Offset, Operations, PathId

router = APIRouter(tags=["admin"])


@router.post("/users", status_code=201)
async def create_user(
    principal: AdminUser, operations: Operations, billing: Billing, audit: AuditLog, body: UserBody
) -> UserView:
    """Create a user; a tenant sees only the listed accounts, which must exist (404)."""
    # Linked to an account not opened yet, the user would see whoever opened it later.
    for account_id in body.account_ids:
        await billing.get(f"/internal/accounts/{account_id}")
    await operations.create_user(
        username=body.username,
        password=body.password,
        role=body.role,
        account_ids=body.account_ids,
    )
    await audit.record("user.create", body.username, {"role": body.role})
    return UserView(username=body.username, role=body.role, account_ids=body.account_ids)


@router.get("/users")
async def list_users(
    principal: AdminUser, operations: Operations, limit: Limit = 50, offset: Offset = 0
) -> UserPage:
    """Users by name, with their accounts and whether they may sign in."""
    return await operations.user_page(limit=limit, offset=offset)


@router.patch("/users/{username}", status_code=204)
async def change_user(
    principal: AdminUser,
    operations: Operations,
    audit: AuditLog,
    username: PathId,
    body: UserChanges,
) -> Response:
    """Disable a user (its tokens stop working at once) or enable it again."""
    await operations.set_disabled(username=username, disabled=body.disabled, by=principal.username)
    await audit.record("user.disable" if body.disabled else "user.enable", username)
    return Response(status_code=204)


@router.put("/users/{username}/password", status_code=204)
async def reset_password(
    principal: AdminUser,
    operations: Operations,
    audit: AuditLog,
    username: PathId,
    body: NewPassword,
) -> Response:
    """Give a user a new password (it is enabled, its tokens revoked)."""
    await operations.set_password(username=username, password=body.password)
    await audit.record("user.password_reset", username)
    return Response(status_code=204)


@router.delete("/users/{username}", status_code=204)
async def delete_user(
    principal: AdminUser, operations: Operations, audit: AuditLog, username: PathId
) -> Response:
    """Delete a user (not yourself, not the last admin)."""
    await operations.delete_user(username=username, by=principal.username)
    await audit.record("user.delete", username)
    return Response(status_code=204)


@router.get("/audit")
async def audit_log(
    principal: AdminUser, operations: Operations, limit: Limit = 50, offset: Offset = 0
) -> AuditPage:
    """Operator actions, newest first."""
    return await operations.audit_page(limit=limit, offset=offset)
