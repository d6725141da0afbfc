"""The billing service: readings in, money out, supply decisions as messages."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from fastapi import APIRouter
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
from prepaid_common.errors import Conflict, Invalid, NotFound
from prepaid_common.outbox import UnitOfWork
from prepaid_common.service import Service
from prometheus_client import Counter
from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from billing.domain import ledger
from billing.domain.money import ZERO
from billing.domain.rating import (
    DEFAULT_MAX_POWER_KW,
    MeterReading,
    Position,
    TariffVersion,
    Verdict,
    position_from_json,
    position_to_json,
    rate_reading,
    version_at,
)
from billing.domain.supply import (
    SitePolicy,
    SupplyInputs,
    crossed_warning,
    decide_supply,
)
from billing.domain.tariffs import PeriodEnergy, TariffDefinition
from billing.tables import (
    account_groups,
    accounts,
    anomalies,
    daily_usage,
    entries,
    holds,
    meter_history,
    meters,
    plumbing,
    readings,
    sheds,
    site_policy,
    supply_events,
    tariff_versions,
    tariffs,
    transactions,
)

log = logging.getLogger(__name__)

READINGS_RATED = Counter(
    "prepaid_billing_readings_rated_total", "Readings taken by billing, by verdict", ["verdict"]
)
TRANSACTIONS_POSTED = Counter(
    "prepaid_billing_transactions_total", "Ledger transactions posted, by kind", ["kind"]
)
SUPPLY_DECISIONS = Counter(
    "prepaid_billing_supply_decisions_total", "Trip and close decisions", ["action"]
)

# Tariff versions before any other: the first version applies from the beginning of time.
BEGINNING = datetime(2000, 1, 1, tzinfo=UTC)


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
        sweep_interval: float = 30.0,
    ) -> None:
        super().__init__(engine=engine, bus=bus)
        # Above this average power between two readings a jump is refused as implausible.
        self.max_power_kw = max_power_kw
        self.sweep_interval = sweep_interval

    def subscriptions(self) -> Sequence[tuple[str, Sequence[str], Handler]]:
        return (
            ("readings", ["reading.v1.#"], self.store.idempotent(self.handle_reading)),
            ("payments", ["payment.succeeded.v1.#"], self.store.idempotent(self.handle_payment)),
        )

    def routers(self) -> Sequence[APIRouter]:
        from billing.api import build_router

        return [build_router(self)]

    async def background(self) -> Sequence[asyncio.Task[None]]:
        return [asyncio.create_task(self._sweep_forever(), name="billing-sweep")]

    # --- message handlers --------------------------------------------------------------
    async def handle_reading(self, uow: UnitOfWork, envelope: Envelope) -> None:
        """Record a reading, rate it, post the charge and decide the meter's supply."""
        reading = open_envelope(envelope, ReadingV1)
        session = uow.session
        energy = reading.energy_kwh.quantize(Decimal("0.001"))
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
                    energy_kwh=energy,
                    received_at=utcnow(),
                )
            )
        binding = (
            await session.execute(
                select(meters, accounts.c.tariff_id.label("account_tariff"))
                .join(accounts, accounts.c.id == meters.c.account_id)
                .where(meters.c.meter_id == reading.meter_id)
            )
        ).first()
        if binding is None:
            READINGS_RATED.labels("unbound").inc()
            return
        policy = await self.policy(session)
        versions = await self.tariff_versions(session, binding.tariff_id or binding.account_tariff)
        rating = rate_reading(
            position_from_json(binding.position),
            MeterReading(
                reading.read_at,
                energy,
                None if reading.tou_kwh is None else PeriodEnergy.of(reading.tou_kwh),
            ),
            versions=versions,
            zone=policy.zone,
            multiplier=binding.multiplier,
            max_power_kw=self.max_power_kw,
        )
        READINGS_RATED.labels(rating.verdict.value).inc()
        if rating.verdict in (Verdict.BACKWARDS, Verdict.IMPLAUSIBLE):
            await self._record_anomaly(uow, reading.meter_id, rating.verdict.value, rating.detail)
            return
        if rating.verdict is Verdict.STALE:
            return
        await session.execute(
            update(meters)
            .where(meters.c.meter_id == reading.meter_id)
            .values(position=position_to_json(rating.position))
        )
        if rating.verdict is Verdict.CHARGE:
            await self._add_usage(uow, binding.account_id, reading, rating, policy)
            if rating.charge != 0:
                await self._post(
                    uow,
                    ledger.consumption_charge(
                        account_id=binding.account_id,
                        meter_id=reading.meter_id,
                        amount=rating.charge,
                        position_key=f"{energy}@{reading.read_at.isoformat()}",
                    ),
                )
        await self.evaluate_account(uow, binding.account_id, now=reading.read_at)

    async def handle_payment(self, uow: UnitOfWork, envelope: Envelope) -> None:
        """Credit a payment once (less any debt share) and restore supply if it is enough."""
        payment = open_envelope(envelope, PaymentSucceededV1)
        account = await self._account_row(uow.session, payment.account_id)
        if account is None:
            # The gateway checks accounts before taking cash; a provider payment for an
            # unknown account is an operator matter, and must not loop on the bus.
            await self._record_anomaly(
                uow, "-", "payment_unknown_account", f"payment {payment.payment_id}"
            )
            return
        balance = await balance_of(uow.session, payment.account_id)
        if account.balance_cap is not None and balance + payment.amount > account.balance_cap:
            # The money was taken already (a provider): credit it, and tell an operator.
            await self._record_anomaly(
                uow,
                "-",
                "balance_cap_exceeded",
                f"payment {payment.payment_id} lifts {payment.account_id} above its cap",
            )
        owed = -(await arrears_of(uow.session, payment.account_id))
        await self._post(
            uow,
            ledger.top_up(
                account_id=payment.account_id,
                payment_id=payment.payment_id,
                amount=payment.amount,
                method=payment.method,
                reference=payment.reference,
                owed=owed,
                debt_share=account.debt_share,
            ),
            announce=True,
        )
        await self.evaluate_account(uow, payment.account_id, now=utcnow())

    # --- ledger ------------------------------------------------------------------------
    async def _post(
        self, uow: UnitOfWork, txn: ledger.Transaction, *, announce: bool = False
    ) -> str | None:
        """Post a transaction unless its operation key was already posted; return its id."""
        session = uow.session
        done = await session.scalar(
            select(transactions.c.id).where(transactions.c.operation_key == txn.operation_key)
        )
        if done is not None:
            return None
        txn_id = str(uuid.uuid4())
        now = utcnow()
        await session.execute(
            insert(transactions).values(
                id=txn_id,
                operation_key=txn.operation_key,
                kind=txn.kind,
                account_id=txn.account_id,
                memo=txn.memo[:400],
                operator=txn.operator,
                reverses=txn.reverses,
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
                    balance=await balance_of(session, txn.account_id),
                    transaction_id=txn_id,
                    kind=txn.kind,
                    at=now,
                )
            )
        return txn_id

    async def _add_usage(
        self, uow: UnitOfWork, account_id: str, reading: ReadingV1, rating: Any, policy: SitePolicy
    ) -> None:
        """Add a reading's energy and cost to its meter's day (the energy-analysis roll-up)."""
        day = reading.read_at.astimezone(policy.zone).date().isoformat()
        key = and_(daily_usage.c.meter_id == reading.meter_id, daily_usage.c.day == day)
        row = (await uow.session.execute(select(daily_usage).where(key))).first()
        metered = rating.metered_kwh.quantize(Decimal("0.000001"))
        billed = rating.billed_kwh.quantize(Decimal("0.000001"))
        if row is None:
            await uow.session.execute(
                insert(daily_usage).values(
                    meter_id=reading.meter_id,
                    day=day,
                    account_id=account_id,
                    metered_kwh=metered,
                    billed_kwh=billed,
                    cost=rating.charge,
                )
            )
        else:
            await uow.session.execute(
                update(daily_usage)
                .where(key)
                .values(
                    metered_kwh=row.metered_kwh + metered,
                    billed_kwh=row.billed_kwh + billed,
                    cost=row.cost + rating.charge,
                )
            )

    # --- supply ------------------------------------------------------------------------
    async def evaluate_account(self, uow: UnitOfWork, account_id: str, *, now: datetime) -> None:
        """Decide every meter of an account; emit a relay request for each change."""
        session = uow.session
        account = await self._account_row(session, account_id)
        if account is None:
            return
        balance = await balance_of(session, account_id)
        warn = crossed_warning(
            balance=balance, warning_line=account.warning_line, warned=account.warned
        )
        if warn is not None:
            await session.execute(
                update(accounts).where(accounts.c.id == account_id).values(warned=warn)
            )
            if warn:
                await self._record_anomaly(
                    uow,
                    "-",
                    "low_balance",
                    f"account {account_id} balance {balance} at or below {account.warning_line}",
                )
        policy = await self.policy(session)
        groups = set(
            (
                await session.scalars(
                    select(account_groups.c.group_name).where(
                        account_groups.c.account_id == account_id
                    )
                )
            ).all()
        )
        shed_by = None
        if not account.protected and groups:
            shed_by = await session.scalar(
                select(sheds.c.group_name)
                .where(sheds.c.group_name.in_(groups), sheds.c.ended_at.is_(None))
                .limit(1)
            )
        rows = (
            await session.execute(
                select(meters.c.meter_id, meters.c.supply).where(meters.c.account_id == account_id)
            )
        ).all()
        for meter_id, current in rows:
            decision = decide_supply(
                SupplyInputs(
                    mode=account.mode,
                    balance=balance,
                    trip_line=account.trip_line,
                    overdraft_limit=account.overdraft_limit,
                    current=current,
                    held=await self._held(session, meter_id, groups, now),
                    shed_by=shed_by,
                    friendly=policy.is_friendly(now),
                )
            )
            action = decision.action_from(current)
            if action is None:
                continue
            await session.execute(
                update(meters).where(meters.c.meter_id == meter_id).values(supply=decision.supply)
            )
            await session.execute(
                insert(supply_events).values(
                    account_id=account_id,
                    meter_id=meter_id,
                    action=action,
                    reason=decision.reason[:400],
                    at=utcnow(),
                )
            )
            SUPPLY_DECISIONS.labels(action).inc()
            await uow.emit(
                RelayRequestedV1(
                    request_id=str(uuid.uuid4()),
                    meter_id=meter_id,
                    account_id=account_id,
                    action=action,
                    reason=decision.reason,
                    at=utcnow(),
                )
            )

    async def _held(
        self, session: AsyncSession, meter_id: str, groups: set[str], now: datetime
    ) -> bool:
        targets = [
            and_(holds.c.scope == "meter", holds.c.target == meter_id),
            holds.c.scope == "global",
        ]
        if groups:
            targets.append(and_(holds.c.scope == "group", holds.c.target.in_(groups)))
        found = await session.scalar(
            select(holds.c.id)
            .where(
                or_(*targets),
                holds.c.released_at.is_(None),
                or_(holds.c.until.is_(None), holds.c.until > now),
            )
            .limit(1)
        )
        return found is not None

    # --- the calendar: fixed charges, daily debt recovery, windows and holds ending ----
    async def sweep(self, now: datetime | None = None) -> None:
        """Post due fixed charges and debt recovery; re-decide every account's supply."""
        now = now or utcnow()
        async with self.store.sessionmaker() as session:
            account_ids = (await session.scalars(select(accounts.c.id))).all()
        for account_id in account_ids:
            async with self.store.unit_of_work() as uow:
                await self._post_calendar_charges(uow, account_id, now)
                await self.evaluate_account(uow, account_id, now=now)

    async def _post_calendar_charges(self, uow: UnitOfWork, account_id: str, now: datetime) -> None:
        session = uow.session
        account = await self._account_row(session, account_id)
        policy = await self.policy(session)
        today = now.astimezone(policy.zone).date()
        tariff = version_at(await self.tariff_versions(session, account.tariff_id), now).definition
        # Charges start on the day the account was opened; posting is idempotent per day.
        opened = account.created_at.astimezone(policy.zone).date()
        if tariff.daily_charge > 0 and today >= opened:
            await self._post(
                uow,
                ledger.fixed_charge(
                    account_id=account_id,
                    amount=tariff.daily_charge,
                    period=today.isoformat(),
                    what="daily",
                ),
            )
        if tariff.monthly_charge > 0:
            await self._post(
                uow,
                ledger.fixed_charge(
                    account_id=account_id,
                    amount=tariff.monthly_charge,
                    period=today.strftime("%Y-%m"),
                    what="monthly",
                ),
            )
        if account.debt_daily > 0:
            owed = -(await arrears_of(session, account_id))
            amount = min(owed, account.debt_daily)
            if amount > 0:
                await self._post(
                    uow,
                    ledger.daily_debt_recovery(
                        account_id=account_id, amount=amount, day=today.isoformat()
                    ),
                )

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval)
            try:
                await self.sweep()
            except Exception:
                log.exception("billing sweep failed")

    # --- lookups -----------------------------------------------------------------------
    async def policy(self, session: AsyncSession) -> SitePolicy:
        raw = await session.scalar(select(site_policy.c.policy).where(site_policy.c.id == 1))
        return SitePolicy() if raw is None else SitePolicy.model_validate(raw)

    async def tariff_versions(self, session: AsyncSession, tariff_id: str) -> list[TariffVersion]:
        rows = (
            await session.execute(
                select(tariff_versions)
                .where(tariff_versions.c.tariff_id == tariff_id)
                .order_by(tariff_versions.c.effective_from)
            )
        ).all()
        if not rows:
            raise NotFound(f"tariff {tariff_id} does not exist")
        return [
            TariffVersion(
                row.id,
                row.effective_from,
                TariffDefinition.model_validate(row.definition),
            )
            for row in rows
        ]

    async def _account_row(self, session: AsyncSession, account_id: str) -> Any:
        return (await session.execute(select(accounts).where(accounts.c.id == account_id))).first()

    async def _record_anomaly(self, uow: UnitOfWork, meter_id: str, kind: str, detail: str) -> None:
        now = utcnow()
        await uow.session.execute(
            insert(anomalies).values(meter_id=meter_id, kind=kind, detail=detail[:400], at=now)
        )
        await uow.emit(AnomalyV1(meter_id=meter_id, kind=kind, detail=detail, at=now))

    # --- operations the API offers -----------------------------------------------------
    async def define_tariff(
        self,
        *,
        tariff_id: str,
        name: str,
        definition: TariffDefinition,
        effective_from: datetime | None,
        operator: str,
    ) -> str:
        """Create a tariff, or schedule a new version of it; return the version id."""
        now = utcnow()
        async with self.store.unit_of_work() as uow:
            exists = await uow.session.scalar(select(tariffs.c.id).where(tariffs.c.id == tariff_id))
            if exists is None:
                await uow.session.execute(
                    insert(tariffs).values(id=tariff_id, name=name, created_at=now)
                )
                effective = effective_from or BEGINNING
            else:
                effective = effective_from or now
                if effective < now - timedelta(minutes=5):
                    raise Invalid("a new version cannot take effect in the past")
            version_id = str(uuid.uuid4())
            await uow.session.execute(
                insert(tariff_versions).values(
                    id=version_id,
                    tariff_id=tariff_id,
                    effective_from=effective,
                    definition=definition.model_dump(mode="json"),
                    created_by=operator,
                    created_at=now,
                )
            )
        return version_id

    async def open_account(
        self,
        *,
        account_id: str,
        name: str,
        tariff_id: str | None,
        price_per_kwh: Decimal | None,
        terms: dict[str, Any],
        groups: Sequence[str],
        operator: str,
    ) -> bool:
        """Open an account; False if one with the same id already exists (same terms)."""
        if tariff_id is None:
            if price_per_kwh is None:
                raise Invalid("give tariff_id or price_per_kwh")
            tariff_id = f"flat-{price_per_kwh.normalize():f}"
            async with self.store.sessionmaker() as session:
                known = await session.scalar(select(tariffs.c.id).where(tariffs.c.id == tariff_id))
            if known is None:
                # Another request may make the same flat tariff at the same moment.
                with contextlib.suppress(IntegrityError):
                    await self.define_tariff(
                        tariff_id=tariff_id,
                        name=f"Flat {price_per_kwh} yuan/kWh",
                        definition=TariffDefinition(kind="flat", price_per_kwh=price_per_kwh),
                        effective_from=None,
                        operator=operator,
                    )
        async with self.store.unit_of_work() as uow:
            if (
                await uow.session.scalar(select(tariffs.c.id).where(tariffs.c.id == tariff_id))
                is None
            ):
                raise NotFound(f"tariff {tariff_id} does not exist")
            existing = await self._account_row(uow.session, account_id)
            if existing is not None:
                if (existing.name, existing.tariff_id) != (name, tariff_id):
                    raise Conflict(f"account {account_id} already exists with other terms")
                return False
            await uow.session.execute(
                insert(accounts).values(
                    id=account_id,
                    name=name,
                    tariff_id=tariff_id,
                    warned=False,
                    created_at=utcnow(),
                    **terms,
                )
            )
            for group in sorted(set(groups)):
                await uow.session.execute(
                    insert(account_groups).values(account_id=account_id, group_name=group)
                )
        return True

    async def update_account(self, account_id: str, changes: dict[str, Any]) -> None:
        """Change an account's terms or groups; supply is re-decided at once."""
        async with self.store.unit_of_work() as uow:
            if await self._account_row(uow.session, account_id) is None:
                raise NotFound(f"account {account_id} does not exist")
            groups = changes.pop("groups", None)
            if "tariff_id" in changes:
                tariff = changes["tariff_id"]
                if (
                    await uow.session.scalar(select(tariffs.c.id).where(tariffs.c.id == tariff))
                    is None
                ):
                    raise NotFound(f"tariff {tariff} does not exist")
            if changes:
                await uow.session.execute(
                    update(accounts).where(accounts.c.id == account_id).values(**changes)
                )
            if groups is not None:
                await uow.session.execute(
                    delete(account_groups).where(account_groups.c.account_id == account_id)
                )
                for group in sorted(set(groups)):
                    await uow.session.execute(
                        insert(account_groups).values(account_id=account_id, group_name=group)
                    )
            await self.evaluate_account(uow, account_id, now=utcnow())

    async def bind_meter(
        self,
        *,
        meter_id: str,
        account_id: str,
        multiplier: Decimal = Decimal(1),
        tariff_id: str | None = None,
        operator: str = "system",
    ) -> bool:
        """Bind a meter to an account; its first reading then fixes the starting register."""
        try:
            async with self.store.unit_of_work() as uow:
                if await self._account_row(uow.session, account_id) is None:
                    raise NotFound(f"account {account_id} does not exist")
                bound = await uow.session.scalar(
                    select(meters.c.account_id).where(meters.c.meter_id == meter_id)
                )
                if bound is not None:
                    if bound != account_id:
                        raise Conflict(f"meter {meter_id} is bound to account {bound}")
                    return False
                now = utcnow()
                await uow.session.execute(
                    insert(meters).values(
                        meter_id=meter_id,
                        account_id=account_id,
                        tariff_id=tariff_id,
                        multiplier=multiplier,
                        position=None,
                        supply="on",
                        bound_at=now,
                    )
                )
                await uow.session.execute(
                    insert(meter_history).values(
                        meter_id=meter_id,
                        account_id=account_id,
                        event="bound",
                        final_kwh=None,
                        detail="",
                        operator=operator,
                        at=now,
                    )
                )
                await self.evaluate_account(uow, account_id, now=now)
        except IntegrityError as error:
            raise Conflict(f"meter {meter_id} was bound concurrently") from error
        return True

    async def swap_meter(
        self,
        *,
        old_meter_id: str,
        new_meter_id: str,
        old_final_kwh: Decimal,
        new_start_kwh: Decimal,
        operator: str,
    ) -> None:
        """Replace a meter (换表): charge the old one up to its final register, then bill
        the new one from its starting register, on the same account."""
        async with self.store.unit_of_work() as uow:
            session = uow.session
            old = (
                await session.execute(select(meters).where(meters.c.meter_id == old_meter_id))
            ).first()
            if old is None:
                raise NotFound(f"meter {old_meter_id} is not bound")
            if (
                await session.scalar(
                    select(meters.c.meter_id).where(meters.c.meter_id == new_meter_id)
                )
                is not None
            ):
                raise Conflict(f"meter {new_meter_id} is already bound")
            now = utcnow()
            position = position_from_json(old.position)
            if position.last is not None:
                if old_final_kwh < position.last.total_kwh:
                    raise Invalid(
                        f"final reading {old_final_kwh} is below the last rated "
                        f"{position.last.total_kwh} kWh"
                    )
                policy = await self.policy(session)
                versions = await self.tariff_versions(
                    session,
                    old.tariff_id or (await self._account_row(session, old.account_id)).tariff_id,
                )
                rating = rate_reading(
                    position,
                    MeterReading(
                        max(now, position.last.read_at + timedelta(seconds=1)), old_final_kwh
                    ),
                    versions=versions,
                    zone=policy.zone,
                    multiplier=old.multiplier,
                    max_power_kw=Decimal("1e12"),  # an operator's final reading is trusted
                )
                if rating.charge != 0:
                    await self._post(
                        uow,
                        ledger.consumption_charge(
                            account_id=old.account_id,
                            meter_id=old_meter_id,
                            amount=rating.charge,
                            position_key=f"{old_final_kwh}@final",
                        ),
                    )
                position = rating.position
            # The new meter continues the old one's cycle: tiers keep counting.
            carried = Position(
                last=MeterReading(now, new_start_kwh),
                cycle_start=position.cycle_start,
                cycle_energy=position.cycle_energy,
                segment_version=position.segment_version,
                segment_base=position.segment_base,
                segment_charged=position.segment_charged,
            )
            await session.execute(delete(meters).where(meters.c.meter_id == old_meter_id))
            await session.execute(
                insert(meters).values(
                    meter_id=new_meter_id,
                    account_id=old.account_id,
                    tariff_id=old.tariff_id,
                    multiplier=old.multiplier,
                    position=position_to_json(carried) if position.last is not None else None,
                    supply=old.supply,
                    bound_at=now,
                )
            )
            for meter_id, event, kwh in (
                (old_meter_id, "swapped_out", old_final_kwh),
                (new_meter_id, "swapped_in", new_start_kwh),
            ):
                await session.execute(
                    insert(meter_history).values(
                        meter_id=meter_id,
                        account_id=old.account_id,
                        event=event,
                        final_kwh=kwh,
                        detail=f"{old_meter_id} -> {new_meter_id}",
                        operator=operator,
                        at=now,
                    )
                )

    async def place_hold(
        self, *, scope: str, target: str, until: datetime | None, reason: str, operator: str
    ) -> str:
        """Hold power (保电) for a meter, a group or everyone until released or expired."""
        hold_id = str(uuid.uuid4())
        async with self.store.unit_of_work() as uow:
            await uow.session.execute(
                insert(holds).values(
                    id=hold_id,
                    scope=scope,
                    target=target if scope != "global" else "*",
                    until=until,
                    reason=reason,
                    operator=operator,
                    created_at=utcnow(),
                    released_at=None,
                )
            )
            for account_id in await self._accounts_in_scope(uow.session, scope, target):
                await self.evaluate_account(uow, account_id, now=utcnow())
        return hold_id

    async def release_hold(self, hold_id: str) -> None:
        async with self.store.unit_of_work() as uow:
            row = (await uow.session.execute(select(holds).where(holds.c.id == hold_id))).first()
            if row is None:
                raise NotFound(f"hold {hold_id} does not exist")
            if row.released_at is None:
                await uow.session.execute(
                    update(holds).where(holds.c.id == hold_id).values(released_at=utcnow())
                )
            for account_id in await self._accounts_in_scope(uow.session, row.scope, row.target):
                await self.evaluate_account(uow, account_id, now=utcnow())

    async def start_shed(self, *, group: str, reason: str, operator: str) -> str:
        """Cut a whole group (building, floor, tenant class), sparing protected accounts."""
        shed_id = str(uuid.uuid4())
        async with self.store.unit_of_work() as uow:
            await uow.session.execute(
                insert(sheds).values(
                    id=shed_id,
                    group_name=group,
                    reason=reason,
                    operator=operator,
                    started_at=utcnow(),
                    ended_at=None,
                )
            )
            for account_id in await self._accounts_in_scope(uow.session, "group", group):
                await self.evaluate_account(uow, account_id, now=utcnow())
        return shed_id

    async def end_shed(self, shed_id: str) -> None:
        async with self.store.unit_of_work() as uow:
            row = (await uow.session.execute(select(sheds).where(sheds.c.id == shed_id))).first()
            if row is None:
                raise NotFound(f"shedding {shed_id} does not exist")
            if row.ended_at is None:
                await uow.session.execute(
                    update(sheds).where(sheds.c.id == shed_id).values(ended_at=utcnow())
                )
            for account_id in await self._accounts_in_scope(uow.session, "group", row.group_name):
                await self.evaluate_account(uow, account_id, now=utcnow())

    async def _accounts_in_scope(self, session: AsyncSession, scope: str, target: str) -> list[str]:
        if scope == "global":
            return list((await session.scalars(select(accounts.c.id))).all())
        if scope == "group":
            return list(
                (
                    await session.scalars(
                        select(account_groups.c.account_id).where(
                            account_groups.c.group_name == target
                        )
                    )
                ).all()
            )
        owner = await session.scalar(select(meters.c.account_id).where(meters.c.meter_id == target))
        return [] if owner is None else [owner]

    async def post_operator_transaction(self, txn: ledger.Transaction) -> str:
        """Post an audited operator transaction (arrears, refund); 409 if the key was used."""
        async with self.store.unit_of_work() as uow:
            if await self._account_row(uow.session, txn.account_id) is None:
                raise NotFound(f"account {txn.account_id} does not exist")
            if txn.kind == "refund":
                balance = await balance_of(uow.session, txn.account_id)
                refunded = -txn.amount_for(ledger.tenant_ledger(txn.account_id))
                if refunded > balance:
                    raise Invalid(f"refund {refunded} exceeds the balance {balance}")
            txn_id = await self._post(uow, txn, announce=True)
            if txn_id is None:
                raise Conflict(f"operation {txn.operation_key} was already posted")
            await self.evaluate_account(uow, txn.account_id, now=utcnow())
        return txn_id

    async def reverse(self, transaction_id: str, *, reason: str, operator: str) -> str:
        """Post the mirror image of a transaction (冲正); a transaction is reversed once."""
        async with self.store.unit_of_work() as uow:
            row = (
                await uow.session.execute(
                    select(transactions).where(transactions.c.id == transaction_id)
                )
            ).first()
            if row is None:
                raise NotFound(f"transaction {transaction_id} does not exist")
            if row.kind == "reversal":
                raise Invalid("a reversal cannot itself be reversed; post a new transaction")
            lines = (
                await uow.session.execute(
                    select(entries.c.ledger_account, entries.c.amount).where(
                        entries.c.transaction_id == transaction_id
                    )
                )
            ).all()
            original = ledger.Transaction(
                operation_key=row.operation_key,
                kind=row.kind,
                account_id=row.account_id,
                memo=row.memo,
                entries=tuple(ledger.Entry(a, m) for a, m in lines),
            )
            txn_id = await self._post(
                uow,
                ledger.reversal(
                    original, original_id=transaction_id, reason=reason, operator=operator
                ),
                announce=True,
            )
            if txn_id is None:
                raise Conflict(f"transaction {transaction_id} was already reversed")
            await self.evaluate_account(uow, row.account_id, now=utcnow())
        return txn_id

    async def check_top_up(self, account_id: str, amount: Decimal) -> None:
        """Refuse a top-up that would lift the balance above the account's cap."""
        async with self.store.sessionmaker() as session:
            account = await self._account_row(session, account_id)
            if account is None:
                raise NotFound(f"account {account_id} does not exist")
            if account.balance_cap is None:
                return
            balance = await balance_of(session, account_id)
        if balance + amount > account.balance_cap:
            raise Conflict(
                f"top-up refused: balance {balance} + {amount} would exceed the "
                f"account's cap of {account.balance_cap}"
            )

    async def set_policy(self, policy: SitePolicy) -> None:
        async with self.store.unit_of_work() as uow:
            values = {"policy": policy.model_dump(mode="json"), "updated_at": utcnow()}
            done = await uow.session.execute(
                update(site_policy).where(site_policy.c.id == 1).values(**values)
            )
            if done.rowcount == 0:  # type: ignore[attr-defined]
                await uow.session.execute(insert(site_policy).values(id=1, **values))


async def balance_of(session: AsyncSession, account_id: str) -> Decimal:
    """Return an account's balance: the sum of its ledger entries."""
    return await _sum_of(session, ledger.tenant_ledger(account_id))


async def arrears_of(session: AsyncSession, account_id: str) -> Decimal:
    """Return an account's arrears balance (negative = owed)."""
    return await _sum_of(session, ledger.arrears_ledger(account_id))


async def _sum_of(session: AsyncSession, ledger_account: str) -> Decimal:
    # The column type turns the summed fen back into an exact Decimal.
    total: Decimal | None = await session.scalar(
        select(func.sum(entries.c.amount)).where(entries.c.ledger_account == ledger_account)
    )
    return total if total is not None else ZERO.quantize(Decimal("0.01"))
