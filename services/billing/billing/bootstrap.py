"""Where billing is wired: its one factory, for every entry point (``__main__``,
standalone, tests, benchmarks)."""

from __future__ import annotations

from typing import TypeVar

from prepaid_common.bus import MessageBus
from sqlalchemy.ext.asyncio import AsyncEngine

from billing.api import build_routers
from billing.calendar import BillingCalendar
from billing.decisions import SupplyDecisions
from billing.handlers import BillingHandlers
from billing.operations import BillingOperations
from billing.operations.accounts import AccountOperations
from billing.operations.imports import ImportOperations
from billing.operations.meters import MeterOperations
from billing.operations.money import MoneyOperations
from billing.operations.site_office import SiteOfficeOperations
from billing.operations.supply import SupplyOperations
from billing.operations.tariffs import TariffOperations
from billing.positions import PositionCache
from billing.service import BillingParts, BillingService
from billing.settings import BillingSettings
from billing.store.queries import BillingQueries
from billing.store.reference import ReferenceCache

S = TypeVar("S", bound=BillingService)


def build(settings: BillingSettings, *, engine: AsyncEngine, bus: MessageBus) -> BillingService:
    """Build the billing service on an engine and a bus, every part wired from settings."""
    return wire(BillingService(engine=engine, bus=bus), settings)


def wire(service: S, settings: BillingSettings) -> S:
    """Wire billing's parts on a service's store (a benchmark passes a timed subclass)."""
    store = service.store
    reference = ReferenceCache(settings.billing_reference_cache_seconds)
    decisions = SupplyDecisions(reference)
    tariffs = TariffOperations(store=store, reference=reference)
    operations = BillingOperations(
        tariffs=tariffs,
        accounts=AccountOperations(store=store, tariffs=tariffs, decisions=decisions),
        meters=MeterOperations(store=store, decisions=decisions),
        supply=SupplyOperations(store=store, reference=reference, decisions=decisions),
        money=MoneyOperations(store=store, decisions=decisions),
        imports=ImportOperations(store=store, tariffs=tariffs, decisions=decisions),
        site_office=SiteOfficeOperations(
            store=store, decisions=decisions, site_name=settings.site_name
        ),
    )
    service.attach(
        BillingParts(
            settings=settings,
            handlers=BillingHandlers(
                reference=reference,
                decisions=decisions,
                positions=PositionCache(settings.billing_position_cache_size),
                max_power_kw=settings.billing_max_power_kw,
                local_credit_tolerance=settings.billing_local_credit_tolerance,
            ),
            operations=operations,
            calendar=BillingCalendar(
                engine=service.engine,
                store=store,
                reference=reference,
                decisions=decisions,
                site_office=operations.site_office,
                retention_days=settings.billing_reading_retention_days,
                interval=settings.billing_sweep_interval_seconds,
            ),
            routers=build_routers(operations, BillingQueries(store.sessionmaker)),
        )
    )
    return service
