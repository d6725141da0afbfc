"""The collector's bulk-import routes (called by the gateway): check, apply, remove."""

from __future__ import annotations

from fastapi import APIRouter
from prepaid_common.contracts.api.imports import (
    FieldApplied,
    FieldImport,
    FieldRemoval,
    ImportCheck,
)

from collector.imports import ImportOperations


def imports_router(imports: ImportOperations) -> APIRouter:
    """Return the import routes, bound to the import operations."""
    router = APIRouter(prefix="/internal/imports")

    @router.post("/check")
    async def check(body: FieldImport) -> ImportCheck:
        return await imports.check(body)

    @router.post("/apply")
    async def apply(body: FieldImport) -> FieldApplied:
        return await imports.apply(body)

    @router.post("/removal", status_code=204)
    async def remove(body: FieldRemoval) -> None:
        await imports.remove(body)

    return router
