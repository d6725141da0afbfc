"""API keys for programs: created by an admin with scopes, shown once, revocable."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prepaid_common.contracts.api.gateway import ApiKeyBody, ApiKeyCreated, ApiKeyList

from gateway.api.deps import AdminUser, AuditLog, Operations, PathId

router = APIRouter(tags=["admin"])


@router.post("/api-keys", status_code=201)
async def create_api_key(
    principal: AdminUser, operations: Operations, audit: AuditLog, body: ApiKeyBody
) -> ApiKeyCreated:
    """Make an API key with scopes; the key is in this answer only (keep it)."""
    created = await operations.create_api_key(
        name=body.name, scopes=body.scopes, created_by=principal.username
    )
    await audit.record("api_key.create", created.id, {"name": body.name, "scopes": created.scopes})
    return created


@router.get("/api-keys")
async def list_api_keys(principal: AdminUser, operations: Operations) -> ApiKeyList:
    """Every API key with its scopes and last use (never the key)."""
    return await operations.api_keys()


@router.delete("/api-keys/{key_id}", status_code=204)
async def revoke_api_key(
    principal: AdminUser, operations: Operations, audit: AuditLog, key_id: PathId
) -> Response:
    """Revoke an API key: calls with it are refused at once."""
    await operations.revoke_api_key(key_id=key_id)
    await audit.record("api_key.revoke", key_id)
    return Response(status_code=204)
