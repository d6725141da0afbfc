"""The billing service: readings in, money out, supply decisions as messages."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from prepaid_common.bus import Handler, MessageBus
from prepaid_common.contracts import (
    AnomalyV1,
    BalanceChangedV1,
    Envelope,
    PaymentSucceededV1,
    ReadingV1,
    RelayRequestedV1,
    open_envelope,
    utcnow,
)
from prepaid_common.errors import Conflict, NotFound
from prepaid_common.outbox import UnitOfWork
from prepaid_common.service import Service
from prometheus_client import Counter
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from billing.domain import ledger
from billing.domain.rating import (
    DEFAULT_MAX_POWER_KW,
    FlatTariff,
    Position,
    Verdict,
    rate_reading,
)
from billing.domain.supply import decide_supply
from billing.tables import accounts, anomalies, entries, meters, plumbing, readings, transactions

READINGS_RATED = Counter(
    "prepaid_billing_readings_rated_total", "Readings taken by billing, by verdict", ["verdict"]
)
TRANSACTIONS_POSTED = Counter(
    "prepaid_billing_transactions_total", "Ledger transactions posted, by kind", ["kind"]
)


class BillingService(Service):
    name = "billing"
    migrations_dir = Path(__file__).parent / "migrations"
    tables = plumbing

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        bus: MessageBus,
        max_power_kw: Decimal = DEFAULT_MAX_POWER_KW,
    ) -> None:
        super().__init__(engine=engine, bus=bus)
        # Above this average power between two readings a jump is refused as implausible.
        self.max_power_kw = max_power_kw

    def subscriptions(self) -> Sequence[tuple[str, Sequence[str], Handler]]:
        return (
            ("readings", ["reading.v1.#"], self.store.idempotent(self.handle_reading)),
            ("payments", ["payment.succeeded.v1.#"], self.store.idempotent(self.handle_payment)),
        )

    def routers(self) -> Sequence[Any]:
        from billing.api import build_router

        return [build_router(self)]

    # --- message handlers ------------------------------------------------------------
    async def handle_reading(self, uow: UnitOfWork, envelope: Envelope) -> None:
        """Record a reading, rate it, post the charge and cut supply if credit ran out."""
        reading = open_envelope(envelope, ReadingV1)
        session = uow.session
        exists = await session.scalar(
            select(func.count())
            .select_from(readings)
            .where(readings.c.meter_id == reading.meter_id, readings.c.read_at == reading.read_at)
        )
        if not exists:
            await session.execute(
                insert(readings).values(
                    meter_id=reading.meter_id,
                    read_at=reading.read_at,
                    energy_kwh=reading.energy_kwh.quantize(Decimal("0.001")),
                    received_at=utcnow(),
                )
            )
        binding = (
            await session.execute(
                select(meters, accounts.c.price_per_kwh)
                .join(accounts, accounts.c.id == meters.c.account_id)
                .where(meters.c.meter_id == reading.meter_id)
            )
        ).first()
        if binding is None:
            READINGS_RATED.labels("unbound").inc()
            return
        position = Position(
            start_kwh=binding.start_kwh,
            last_kwh=binding.last_kwh,
            last_read_at=binding.last_read_at,
            charged=binding.charged,
        )
        rating = rate_reading(
            FlatTariff(binding.price_per_kwh),
            position,
            energy_kwh=reading.energy_kwh.quantize(Decimal("0.001")),
            read_at=reading.read_at,
            max_power_kw=self.max_power_kw,
        )
        READINGS_RATED.labels(rating.verdict.value).inc()
        if rating.verdict in (Verdict.BACKWARDS, Verdict.IMPLAUSIBLE):
            await self._record_anomaly(uow, reading.meter_id, rating.verdict.value, rating.detail)
            return
        if rating.verdict is Verdict.STALE:
            return
        new = rating.position
        await session.execute(
            update(meters)
            .where(meters.c.meter_id == reading.meter_id)
            .values(
                start_kwh=new.start_kwh,
                last_kwh=new.last_kwh,
                last_read_at=new.last_read_at,
                charged=new.charged,
            )
        )
        if rating.charge > 0:
            assert new.last_kwh is not None
            await self._post(
                uow,
                ledger.consumption_charge(
                    account_id=binding.account_id,
                    meter_id=reading.meter_id,
                    amount=rating.charge,
                    up_to_kwh=new.last_kwh,
                ),
                announce=False,
            )
            await self._apply_supply_rule(uow, binding.account_id)

    async def handle_payment(self, uow: UnitOfWork, envelope: Envelope) -> None:
        """Credit a payment once and restore supply if it lifts the balance."""
        payment = open_envelope(envelope, PaymentSucceededV1)
        if await self._account_row(uow, payment.account_id) is None:
            # Payments checks accounts through the gateway; one that vanished is an operator
            # matter, and the message must not loop: record it as an anomaly.
            await self._record_anomaly(
                uow, "-", "payment_unknown_account", f"payment {payment.payment_id}"
            )
            return
        await self._post(
            uow,
            ledger.top_up(
                account_id=payment.account_id,
                payment_id=payment.payment_id,
                amount=payment.amount,
                method=payment.method,
                reference=payment.reference,
            ),
            announce=True,
        )
        await self._apply_supply_rule(uow, payment.account_id)

    # --- ledger ----------------------------------------------------------------------
    async def _post(self, uow: UnitOfWork, txn: ledger.Transaction, *, announce: bool) -> bool:
        """Post a transaction unless its operation key was already posted."""
        session = uow.session
        done = await session.scalar(
            select(transactions.c.id).where(transactions.c.operation_key == txn.operation_key)
        )
        if done is not None:
            return False
        txn_id = str(uuid.uuid4())
        now = utcnow()
        await session.execute(
            insert(transactions).values(
                id=txn_id,
                operation_key=txn.operation_key,
                kind=txn.kind,
                account_id=txn.account_id,
                memo=txn.memo,
                created_at=now,
            )
        )
        await session.execute(
            insert(entries),
            [
                {"transaction_id": txn_id, "ledger_account": e.ledger_account, "amount": e.amount}
                for e in txn.entries
            ],
        )
        TRANSACTIONS_POSTED.labels(txn.kind).inc()
        if announce:
            await uow.emit(
                BalanceChangedV1(
                    account_id=txn.account_id,
                    balance=await self._balance(uow, txn.account_id),
                    transaction_id=txn_id,
                    kind=txn.kind,
                    at=now,
                )
            )
        return True

    async def _balance(self, uow: UnitOfWork, account_id: str) -> Decimal:
        return await balance_of(uow.session, account_id)

    async def _account_row(self, uow: UnitOfWork, account_id: str) -> Any:
        return (
            await uow.session.execute(select(accounts).where(accounts.c.id == account_id))
        ).first()

    async def _apply_supply_rule(self, uow: UnitOfWork, account_id: str) -> None:
        account = await self._account_row(uow, account_id)
        balance = await self._balance(uow, account_id)
        supply, action, reason = decide_supply(
            supply=account.supply, balance=balance, trip_line=account.trip_line
        )
        if action is None:
            return
        await uow.session.execute(
            update(accounts).where(accounts.c.id == account_id).values(supply=supply)
        )
        meter_ids = (
            await uow.session.scalars(
                select(meters.c.meter_id).where(meters.c.account_id == account_id)
            )
        ).all()
        now = utcnow()
        for meter_id in meter_ids:
            await uow.emit(
                RelayRequestedV1(
                    request_id=str(uuid.uuid4()),
                    meter_id=meter_id,
                    account_id=account_id,
                    action=action,
                    reason=reason,
                    at=now,
                )
            )

    async def _record_anomaly(self, uow: UnitOfWork, meter_id: str, kind: str, detail: str) -> None:
        now = utcnow()
        await uow.session.execute(
            insert(anomalies).values(meter_id=meter_id, kind=kind, detail=detail, at=now)
        )
        await uow.emit(AnomalyV1(meter_id=meter_id, kind=kind, detail=detail, at=now))

    # --- operations the API offers ---------------------------------------------------
    async def open_account(
        self,
        *,
        account_id: str,
        name: str,
        price_per_kwh: Decimal,
        trip_line: Decimal,
        warning_line: Decimal,
    ) -> bool:
        """Open an account; False if one with the same id and terms already exists."""
        async with self.store.unit_of_work() as uow:
            existing = await self._account_row(uow, account_id)
            if existing is not None:
                if (existing.name, existing.price_per_kwh, existing.trip_line) != (
                    name,
                    price_per_kwh,
                    trip_line,
                ):
                    raise Conflict(f"account {account_id} already exists with other terms")
                return False
            await uow.session.execute(
                insert(accounts).values(
                    id=account_id,
                    name=name,
                    price_per_kwh=price_per_kwh,
                    trip_line=trip_line,
                    warning_line=warning_line,
                    supply="on",
                    created_at=utcnow(),
                )
            )
        return True

    async def bind_meter(self, *, meter_id: str, account_id: str) -> bool:
        """Bind a meter to an account; its first reading then fixes the starting register."""
        try:
            async with self.store.unit_of_work() as uow:
                if await self._account_row(uow, account_id) is None:
                    raise NotFound(f"account {account_id} does not exist")
                bound = await uow.session.scalar(
                    select(meters.c.account_id).where(meters.c.meter_id == meter_id)
                )
                if bound is not None:
                    if bound != account_id:
                        raise Conflict(f"meter {meter_id} is bound to account {bound}")
                    return False
                await uow.session.execute(
                    insert(meters).values(
                        meter_id=meter_id,
                        account_id=account_id,
                        charged=Decimal("0.00"),
                        bound_at=utcnow(),
                    )
                )
        except IntegrityError as error:
            raise Conflict(f"meter {meter_id} was bound concurrently") from error
        return True


async def balance_of(session: Any, account_id: str) -> Decimal:
    """Return an account's balance: the sum of its ledger entries."""
    # The column type turns the summed fen back into an exact Decimal.
    total: Decimal | None = await session.scalar(
        select(func.sum(entries.c.amount)).where(
            entries.c.ledger_account == ledger.tenant_ledger(account_id)
        )
    )
    return total if total is not None else Decimal("0.00")
