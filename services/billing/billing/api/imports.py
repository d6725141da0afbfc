"""Bulk-import routes (called by the gateway): check, then apply, the ledger part."""

from __future__ import annotations

from fastapi import APIRouter
from prepaid_common.contracts.api.imports import ImportCheck, LedgerApplied, LedgerImport

from billing.operations.imports import ImportOperations


def router(imports: ImportOperations) -> APIRouter:
    """Return the import routes."""
    routes = APIRouter(prefix="/internal/imports")

    @routes.post("/check")
    async def check(body: LedgerImport) -> ImportCheck:
        return await imports.check(body)

    @routes.post("/apply")
    async def apply(body: LedgerImport) -> LedgerApplied:
        return await imports.apply(body)

    return routes
