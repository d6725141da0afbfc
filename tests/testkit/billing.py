"""Billing factories for the tests: a service on a real database, and a harness that hands it
messages as its consumers would."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

import httpx
from billing.bootstrap import build
from billing.domain.tariffs import TariffDefinition, Tier
from billing.service import BillingService
from billing.settings import BillingSettings
from billing.store.balances import balance_of
from billing.tables import daily_usage, meters
from prepaid_common.bus import InProcessBus
from prepaid_common.contracts import (
    CommandOutcomeV1,
    Envelope,
    Message,
    PaymentSucceededV1,
    ReadingV1,
    utcnow,
)
from prepaid_common.contracts.api.billing import AccountTerms
from prepaid_common.db import create_engine
from prepaid_common.outbox import UnitOfWork
from pydantic import BaseModel
from sqlalchemy import select

# Tiered, so that a charge depends on where the cycle stands (a split that broke the
# cumulative position would show); 1.00 yuan/kWh up to 5 kWh, 1.50 above.
TIERED = TariffDefinition(
    kind="tiered",
    price_per_kwh=Decimal(1),
    tiers=[Tier(up_to_kwh=Decimal(5)), Tier(surcharge=Decimal("0.5"))],
)
# The terms of the accounts tests open: the API's defaults, warned at 5.00 yuan.
TEST_TERMS = AccountTerms(warning_line=Decimal("5.00"))


async def billing_on(
    database_url: str, bus: Any = None, settings: BillingSettings | None = None
) -> BillingService:
    """A migrated billing service on ``database_url`` (in-process bus unless given)."""
    service = build(
        settings or BillingSettings(),
        engine=create_engine(database_url),
        bus=bus or InProcessBus(),
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
        terms=TEST_TERMS,
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


Captured = TypeVar("Captured", bound=BaseModel)
SomeHarness = TypeVar("SomeHarness", bound="BillingHarness")
Handler = Callable[[UnitOfWork, Envelope], Awaitable[None]]


class BillingHarness:
    """Billing alone: messages handed over as its consumers would, what it publishes relayed
    at once (``capture`` keeps what a test looks at), its internal API at ``api``."""

    def __init__(self, service: BillingService, bus: InProcessBus) -> None:
        self.service = service
        self.bus = bus
        self.api = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=service.internal_app()), base_url="http://billing"
        )
        self.payment_numbers = itertools.count(1)

    def capture(self, topic: str, model: type[Captured]) -> list[Captured]:
        """Return a list that collects every message billing publishes under ``topic``."""
        captured: list[Captured] = []

        async def collect(envelope: Envelope) -> None:
            captured.append(model.model_validate(envelope.payload))

        self.bus.subscribe(f"capture-{topic}", [f"{topic}.#"], collect)
        return captured

    async def deliver(self, message: Message) -> None:
        """Hand billing one message as its consumer would, then relay what it published."""
        handlers: dict[type[Message], Handler] = {
            ReadingV1: self.service.handlers.handle_reading,
            PaymentSucceededV1: self.service.handlers.handle_payment,
            CommandOutcomeV1: self.service.handlers.handle_outcome,
        }
        handle = handlers[type(message)]
        await self.service.store.idempotent(handle)(Envelope.wrap(message, producer="test"))
        await self.flush()

    async def flush(self) -> None:
        """Relay everything in billing's outbox."""
        while await self.service.relay.relay_once():
            pass

    async def pay(self, account: str, amount: str) -> str:
        """Deliver a cash payment to an account; return its payment id."""
        payment_id = f"pay-{account}-{next(self.payment_numbers)}"
        await self.deliver(
            PaymentSucceededV1(
                payment_id=payment_id,
                account_id=account,
                amount=Decimal(amount),
                method="cash",
                reference=payment_id,
                at=utcnow(),
            )
        )
        return payment_id

    async def balance(self, account: str) -> Decimal:
        """Return an account's balance."""
        return await balance(self.service, account)

    async def open_account(
        self,
        account: str,
        *meters: str,
        credit: str = "0",
        tariff_id: str | None = None,
        price: str = "1",
        groups: Sequence[str] = (),
        **terms: Any,
    ) -> None:
        """Open an account on TEST_TERMS changed by ``terms`` (on a flat ``price`` unless a
        tariff is given), pay ``credit`` in and bind ``meters``."""
        await self.service.operations.accounts.open_account(
            account_id=account,
            name=account,
            tariff_id=tariff_id,
            price_per_kwh=None if tariff_id else Decimal(price),
            terms=AccountTerms(**(TEST_TERMS.model_dump() | terms)),
            groups=list(groups),
            operator="test",
        )
        if Decimal(credit) > 0:
            await self.pay(account, credit)
        for meter in meters:
            await self.service.operations.meters.bind_meter(meter_id=meter, account_id=account)

    async def assert_ledger_balances(self) -> None:
        """Assert every transaction balances and every projected balance equals its entries."""
        check = (await self.api.get("/internal/ledger/check")).json()
        assert Decimal(check["sum"]) == 0
        assert check["unbalanced"] == []
        assert check["projection_mismatches"] == []


@asynccontextmanager
async def billing_harness(
    database_url: str, harness: type[SomeHarness]
) -> AsyncIterator[SomeHarness]:
    """Run a harness around billing on a migrated database and an in-process bus."""
    engine = create_engine(database_url)
    bus = InProcessBus()
    service = build(BillingSettings(), engine=engine, bus=bus)
    await service.migrate()
    running = harness(service, bus)
    try:
        yield running
    finally:
        await running.api.aclose()
        await engine.dispose()
