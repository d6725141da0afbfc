"""Billing's internal HTTP API (called by the gateway): routers by area, nothing else.

Each route validates its input with the contract models, calls one operation or one read,
and answers a contract model (``prepaid_common.contracts.api.billing``).
"""

from __future__ import annotations

from fastapi import APIRouter

from billing.api import (
    accounts,
    checks,
    imports,
    meters,
    money,
    reports,
    sales,
    site_office,
    supply,
    tariffs,
)
from billing.operations import BillingOperations
from billing.store.queries import BillingQueries


def build_routers(operations: BillingOperations, queries: BillingQueries) -> list[APIRouter]:
    """Return billing's internal routers, each over the operations and reads it needs."""
    return [
        tariffs.router(operations.tariffs, queries),
        accounts.router(operations.accounts, queries),
        money.router(operations.money),
        meters.router(operations.meters, queries),
        supply.router(operations.supply, queries),
        reports.router(queries),
        checks.router(queries),
        sales.router(queries),
        imports.router(operations.imports),
        site_office.router(operations.site_office, queries),
    ]
