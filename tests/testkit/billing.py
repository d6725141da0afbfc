"""Billing factories for the batch and storage tests: a service on a real database."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from billing.bootstrap import build
from billing.domain.tariffs import TariffDefinition, Tier
from billing.service import BillingService
from billing.settings import BillingSettings
from billing.store.balances import balance_of
from billing.tables import daily_usage, meters
from prepaid_common.bus import InProcessBus
from prepaid_common.contracts import Envelope, PaymentSucceededV1, ReadingV1, utcnow
from prepaid_common.contracts.api.billing import AccountTerms
from prepaid_common.db import create_engine
from sqlalchemy import select

# Tiered, so that a charge depends on where the cycle stands (a split that broke the
# cumulative position would show); 1.00 yuan/kWh up to 5 kWh, 1.50 above.
TIERED = TariffDefinition(
    kind="tiered",
    price_per_kwh=Decimal(1),
    tiers=[Tier(up_to_kwh=Decimal(5)), Tier(surcharge=Decimal("0.5"))],
)


async def billing_on(database_url: str, bus: Any = None) -> BillingService:
    """A migrated billing service on ``database_url`` (in-process bus unless given)."""
    service = build(
        BillingSettings(), engine=create_engine(database_url), bus=bus or InProcessBus()
    )
    await service.migrate()
    return service


async def define_tariff(
    service: BillingService, tariff_id: str, definition: TariffDefinition = TIERED
) -> None:
    await service.operations.tariffs.define_tariff(
        tariff_id=tariff_id,
        name=tariff_id,
        definition=definition,
        effective_from=None,
        operator="t",
    )


async def open_with_meters(
    service: BillingService,
    account: str,
    meter_ids: list[str],
    *,
    tariff_id: str,
    credit: str = "100.00",
) -> None:
    """Open a prepaid account on a tariff, top it up and bind its meters."""
    await service.operations.accounts.open_account(
        account_id=account,
        name=account,
        tariff_id=tariff_id,
        price_per_kwh=None,
        terms=AccountTerms(warning_line=Decimal("5.00")),
        groups=[],
        operator="test",
    )
    if Decimal(credit) > 0:
        await service.store.idempotent(service.handlers.handle_payment)(
            Envelope.wrap(
                PaymentSucceededV1(
                    payment_id=f"credit-{account}",
                    account_id=account,
                    amount=Decimal(credit),
                    method="cash",
                    reference=account,
                    at=utcnow(),
                ),
                producer="test",
            )
        )
    for meter_id in meter_ids:
        await service.operations.meters.bind_meter(meter_id=meter_id, account_id=account)


def reading(meter_id: str, at: datetime, kwh: str | Decimal) -> Envelope:
    """A reading envelope (a new message id each time)."""
    return Envelope.wrap(
        ReadingV1(meter_id=meter_id, dtu_id="D1", read_at=at, energy_kwh=Decimal(kwh)),
        producer="test",
    )


async def balance(service: BillingService, account: str) -> Decimal:
    async with service.store.sessionmaker() as session:
        return await balance_of(session, account)


async def meter_state(service: BillingService, meter_id: str) -> tuple[Any, list[Any]]:
    """A meter's rating position and its daily usage rows (day, metered, billed, cost)."""
    async with service.store.sessionmaker() as session:
        position = await session.scalar(
            select(meters.c.position).where(meters.c.meter_id == meter_id)
        )
        usage = (
            await session.execute(
                select(
                    daily_usage.c.day,
                    daily_usage.c.metered_kwh,
                    daily_usage.c.billed_kwh,
                    daily_usage.c.cost,
                )
                .where(daily_usage.c.meter_id == meter_id)
                .order_by(daily_usage.c.day)
            )
        ).all()
    return position, [tuple(row) for row in usage]
