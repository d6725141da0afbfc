"""Tariff routes."""

from __future__ import annotations

from fastapi import APIRouter
from prepaid_common.contracts.api.billing import (
    Items,
    TariffBody,
    TariffDefined,
    TariffSummary,
    TariffView,
)

from billing.operations.tariffs import TariffOperations
from billing.store.queries import BillingQueries


def router(tariffs: TariffOperations, queries: BillingQueries) -> APIRouter:
    """Return the tariff routes."""
    routes = APIRouter(prefix="/internal")

    @routes.post("/tariffs", status_code=201)
    async def define_tariff(body: TariffBody) -> TariffDefined:
        version_id = await tariffs.define_tariff(
            tariff_id=body.id,
            name=body.name,
            definition=body.definition,
            effective_from=body.effective_from,
            operator=body.operator,
        )
        tariff = await queries.tariff(body.id)
        return TariffDefined(**dict(tariff), version_id=version_id)

    @routes.get("/tariffs")
    async def list_tariffs() -> Items[TariffSummary]:
        return await queries.tariffs()

    @routes.get("/tariffs/{tariff_id}")
    async def get_tariff(tariff_id: str) -> TariffView:
        return await queries.tariff(tariff_id)

    return routes
