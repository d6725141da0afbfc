"""The billing service: readings in, money out, supply decisions as messages."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import Counter as Tally
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from prepaid_common.bus import Handler, MessageBus
from prepaid_common.bus.base import release_next_batch
from prepaid_common.contracts import (
    AnomalyV1,
    BalanceChangedV1,
    CommandOutcomeV1,
    Envelope,
    PaymentSucceededV1,
    ReadingBatchV1,
    ReadingV1,
    RelayRequestedV1,
    open_envelope,
    utcnow,
)
from prepaid_common.errors import Conflict, Invalid, NotFound
from prepaid_common.outbox import UnitOfWork
from prepaid_common.service import BatchSubscriptionSpec, Service
from prometheus_client import Counter
from sqlalchemy import Text, and_, cast, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from billing import bulk, partitions, purchases
from billing.domain import ledger
from billing.domain.money import ZERO
from billing.domain.rater import Rater, position_text
from billing.domain.rating import (
    DEFAULT_MAX_POWER_KW,
    MeterReading,
    Position,
    Rating,
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
    is_friendly,
)
from billing.domain.tariffs import PeriodEnergy, TariffDefinition
from billing.ids import new_ids
from billing.positions import PositionCache
from billing.settings import BillingSettings
from billing.tables import (
    account_groups,
    accounts,
    anomalies,
    balances,
    entries,
    holds,
    meter_history,
    meters,
    plumbing,
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
        settings: BillingSettings | None = None,
    ) -> None:
        super().__init__(engine=engine, bus=bus)
        # Above this average power between two readings a jump is refused as implausible.
        self.max_power_kw = max_power_kw
        self.sweep_interval = sweep_interval
        self.settings = settings or BillingSettings()
        self._cache = ReferenceCache(self.settings.reference_cache_seconds)
        # Parsed rating positions between batches, checked against the stored text.
        self._raters: dict[str, tuple[list[TariffVersion], Rater]] = {}
        self._positions = PositionCache(self.settings.position_cache_size)
        self._partitions_kept_at: float | None = None

    def subscriptions(self) -> Sequence[tuple[str, Sequence[str], Handler]]:
        return (
            ("payments", ["payment.succeeded.v1.#"], self.store.idempotent(self.handle_payment)),
            ("outcomes", ["command.outcome.v1.#"], self.store.idempotent(self.handle_outcome)),
        )

    def batch_subscriptions(self) -> Sequence[BatchSubscriptionSpec]:
        return (
            BatchSubscriptionSpec(
                "readings",
                # reading.v1 one reading a message, reading.batch.v1 (collectors) many.
                ["reading.v1.#", "reading.batch.v1.#"],
                self.store.idempotent_batch(self.handle_readings),
                max_batch=self.settings.reading_batch_max,
                max_wait=self.settings.reading_batch_wait_seconds,
                weigh=readings_carried,
                prefetch=self.settings.reading_prefetch,
            ),
        )

    def routers(self) -> Sequence[APIRouter]:
        from billing.api import build_router

        return [build_router(self)]

    async def background(self) -> Sequence[asyncio.Task[None]]:
        return [asyncio.create_task(self._sweep_forever(), name="billing-sweep")]

    # --- message handlers --------------------------------------------------------------
    async def handle_reading(self, uow: UnitOfWork, envelope: Envelope) -> None:
        """Record a reading, rate it, post the charge and decide the meter's supply."""
        await self.handle_readings(uow, [envelope])

    async def handle_readings(self, uow: UnitOfWork, batch: list[Envelope]) -> None:
        """Record, rate and charge a batch of readings in one transaction.

        Each meter's readings are rated in delivery order exactly as one at a time would be;
        the charges of one meter in one batch are posted as one consumption transaction
        (the position telescopes, so the total is the same to the fen), and supply is
        decided for the accounts whose decision could change.
        """
        session = uow.session
        received = utcnow()
        by_meter: dict[str, list[ReadingV1]] = {}
        history: dict[tuple[str, datetime], dict[str, Any]] = {}
        for reading in readings_of(batch):
            by_meter.setdefault(reading.meter_id, []).append(reading)
            # The first copy of a (meter, instant) is the one kept, as before batching.
            history.setdefault(
                (reading.meter_id, reading.read_at),
                {
                    "meter_id": reading.meter_id,
                    "read_at": reading.read_at,
                    "energy_kwh": reading.energy_kwh.quantize(ENERGY_QUANTUM),
                    "received_at": received,
                },
            )
        await bulk.insert_readings(session, list(history.values()))
        bindings = await self._bindings_of(session, list(by_meter))
        # This batch now holds its meters' row locks: a later batch touching one of them
        # waits for this commit, so the bus may start the next batch meanwhile.
        release_next_batch()
        policy = await self._cached_policy(session)
        verdicts: Tally[str] = Tally()
        work = BatchWork()
        for meter_id, meter_readings in by_meter.items():
            binding = bindings.get(meter_id)
            if binding is None:
                verdicts["unbound"] += len(meter_readings)
                continue
            rater = await self._cached_rater(
                session, binding.tariff_id or binding.account_tariff, policy
            )
            await self._rate_meter(uow, work, binding, meter_readings, rater, policy, verdicts)
        for verdict, count in verdicts.items():
            READINGS_RATED.labels(verdict).inc(count)
        await bulk.update_positions(session, work.positions)
        await bulk.add_daily_usage(
            session,
            [
                {
                    "meter_id": meter_id,
                    "day": day,
                    "account_id": usage.account_id,
                    "metered_kwh": usage.metered_kwh,
                    "billed_kwh": usage.billed_kwh,
                    "cost": usage.cost,
                }
                for (meter_id, day), usage in sorted(work.usage.items())
            ],
        )
        if work.charges:
            await self._post_many(uow, work.charges)
        await purchases.check_readings(
            uow, by_meter, self._record_anomaly, tolerance=self.settings.local_credit_tolerance
        )
        await self._evaluate_after_readings(uow, bindings, work.evaluate_at)

    async def _rate_meter(
        self,
        uow: UnitOfWork,
        work: BatchWork,
        binding: Any,
        meter_readings: list[ReadingV1],
        rater: Rater,
        policy: SitePolicy,
        verdicts: Tally[str],
    ) -> None:
        """Rate one meter's readings of a batch in order; collect what to write."""
        meter_id, account_id = binding.meter_id, binding.account_id
        # binding.position is the stored JSON text, read under the meter's row lock.
        position = self._positions.load(meter_id, binding.position)
        moved = False
        charged = ZERO
        charged_to = ""
        for reading in meter_readings:
            energy = reading.energy_kwh.quantize(ENERGY_QUANTUM)
            rating = rater.rate(
                position,
                MeterReading(
                    reading.read_at,
                    energy,
                    None if reading.tou_kwh is None else PeriodEnergy.of(reading.tou_kwh),
                ),
                multiplier=binding.multiplier,
                max_power_kw=self.max_power_kw,
            )
            verdicts[rating.verdict.value] += 1
            if rating.verdict in (Verdict.BACKWARDS, Verdict.IMPLAUSIBLE):
                await self._record_anomaly(uow, meter_id, rating.verdict.value, rating.detail)
                continue
            if rating.verdict is Verdict.STALE:
                continue
            position = rating.position
            moved = True
            work.evaluate_at[account_id] = reading.read_at
            if rating.verdict is Verdict.CHARGE:
                work.add_usage(meter_id, account_id, reading.read_at, rating, policy)
                if rating.charge != 0:
                    charged += rating.charge
                    charged_to = f"{energy}@{reading.read_at.isoformat()}"
        if moved:
            text = work.positions[meter_id] = position_text(position)
            # Used by a later batch only if this text is what it finds stored.
            self._positions.keep(meter_id, text, position)
        if charged_to and charged != 0:
            work.charges.append(
                ledger.consumption_charge(
                    account_id=account_id,
                    meter_id=meter_id,
                    amount=charged,
                    position_key=charged_to,
                )
            )

    async def _bindings_of(self, session: AsyncSession, meter_ids: list[str]) -> dict[str, Any]:
        """Every meter of the accounts the given meters belong to, with its account's terms."""
        touched = select(meters.c.account_id).where(
            bulk.one_of(session, meters.c.meter_id, meter_ids)
        )
        rows = (
            await session.execute(
                select(
                    meters.c.meter_id,
                    meters.c.account_id,
                    meters.c.tariff_id,
                    meters.c.multiplier,
                    # As stored: the position cache compares texts before parsing.
                    cast(meters.c.position, Text).label("position"),
                    meters.c.supply,
                    accounts.c.tariff_id.label("account_tariff"),
                    accounts.c.mode,
                    accounts.c.trip_line,
                    accounts.c.overdraft_limit,
                    accounts.c.warning_line,
                    accounts.c.warned,
                )
                .join(accounts, accounts.c.id == meters.c.account_id)
                .where(meters.c.account_id.in_(touched))
                .order_by(meters.c.meter_id)
                # Replicas rating the same meter wait for each other instead of both moving
                # its position from the same start.
                .with_for_update(of=meters)
            )
        ).all()
        return {row.meter_id: row for row in rows}

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
        top_up = ledger.top_up(
            account_id=payment.account_id,
            payment_id=payment.payment_id,
            amount=payment.amount,
            method=payment.method,
            reference=payment.reference,
            owed=owed,
            debt_share=account.debt_share,
        )
        posted = await self._post(uow, top_up, announce=True)
        await self.evaluate_account(uow, payment.account_id, now=utcnow())
        if posted is not None:
            # A local-prepaid meter gets the credit pushed too, once per payment.
            await purchases.queue_purchase(uow, top_up)

    async def handle_outcome(self, uow: UnitOfWork, envelope: Envelope) -> None:
        """Follow the pushes of purchases to local-prepaid meters (relay outcomes: nothing)."""
        outcome = open_envelope(envelope, CommandOutcomeV1)
        await purchases.take_outcome(uow, outcome, self._record_anomaly)

    # --- ledger ------------------------------------------------------------------------
    async def _post(
        self, uow: UnitOfWork, txn: ledger.Transaction, *, announce: bool = False
    ) -> str | None:
        """Post a transaction unless its operation key was already posted; return its id."""
        posted = await self._post_many(uow, [txn])
        txn_id = posted.get(txn.operation_key)
        if txn_id is not None and announce:
            await uow.emit(
                BalanceChangedV1(
                    account_id=txn.account_id,
                    balance=await balance_of(uow.session, txn.account_id),
                    transaction_id=txn_id,
                    kind=txn.kind,
                    at=utcnow(),
                )
            )
        return txn_id

    async def _post_many(
        self, uow: UnitOfWork, txns: Sequence[ledger.Transaction]
    ) -> dict[str, str]:
        """Post transactions whose operation keys are new, and move the balance projection
        by their entries in the same transaction; return the new ids by operation key.

        This is the one function that writes ledger entries and balances.
        """
        session = uow.session
        done = set(
            (
                await session.scalars(
                    select(transactions.c.operation_key).where(
                        bulk.one_of(
                            session, transactions.c.operation_key, [t.operation_key for t in txns]
                        )
                    )
                )
            ).all()
        )
        now = utcnow()
        posted: dict[str, str] = {}
        headers: list[dict[str, Any]] = []
        lines: list[dict[str, Any]] = []
        moves: dict[str, Decimal] = {}
        kinds: Tally[str] = Tally()
        ids = iter(new_ids(len(txns)))  # one random read for the batch, not one per id
        for txn in txns:
            if txn.operation_key in done or txn.operation_key in posted:
                continue
            txn_id = posted[txn.operation_key] = next(ids)
            headers.append(
                {
                    "id": txn_id,
                    "operation_key": txn.operation_key,
                    "kind": txn.kind,
                    "account_id": txn.account_id,
                    "memo": txn.memo[:400],
                    "operator": txn.operator,
                    "reverses": txn.reverses,
                    "created_at": now,
                }
            )
            for entry in txn.entries:
                lines.append(
                    {
                        "transaction_id": txn_id,
                        "ledger_account": entry.ledger_account,
                        "amount": entry.amount,
                    }
                )
                moves[entry.ledger_account] = moves.get(entry.ledger_account, ZERO) + entry.amount
            kinds[txn.kind] += 1
        if not headers:
            return posted
        for kind, count in kinds.items():
            TRANSACTIONS_POSTED.labels(kind).inc(count)
        await bulk.insert_postings(session, headers, lines)
        await bulk.move_balances(session, moves)
        return posted

    async def _evaluate_after_readings(
        self, uow: UnitOfWork, bindings: dict[str, Any], evaluate_at: dict[str, datetime]
    ) -> None:
        """Decide supply for the accounts of a batch whose decision could change.

        Evaluating every account after every reading would give the same result: an
        account is skipped only when its warning flag already matches its balance and each
        of its meters already has the supply its balance calls for, no shedding touches it,
        and (while any hold is in force) none of its meters is off.
        """
        if not evaluate_at:
            return
        session = uow.session
        ids = sorted(evaluate_at)
        known = dict(
            (
                await session.execute(
                    select(balances.c.ledger_account, balances.c.balance).where(
                        bulk.one_of(
                            session,
                            balances.c.ledger_account,
                            [ledger.tenant_ledger(a) for a in ids],
                        )
                    )
                )
            ).all()
        )
        shed = set(
            (
                await session.scalars(
                    select(account_groups.c.account_id)
                    .join(sheds, sheds.c.group_name == account_groups.c.group_name)
                    .where(
                        sheds.c.ended_at.is_(None),
                        bulk.one_of(session, account_groups.c.account_id, ids),
                    )
                )
            ).all()
        )
        now = utcnow()
        holding = (
            await session.scalar(
                select(holds.c.id)
                .where(
                    holds.c.released_at.is_(None), or_(holds.c.until.is_(None), holds.c.until > now)
                )
                .limit(1)
            )
        ) is not None
        by_account: dict[str, list[Any]] = {}
        for row in bindings.values():
            by_account.setdefault(row.account_id, []).append(row)
        for account_id in ids:
            rows = by_account[account_id]
            terms = rows[0]
            balance = known.get(ledger.tenant_ledger(account_id), ZERO)
            expected = (
                "on"
                if terms.mode == "postpaid" or balance > terms.trip_line - terms.overdraft_limit
                else "off"
            )
            settled = (
                terms.warned == (balance <= terms.warning_line)
                and all(row.supply == expected for row in rows)
                and account_id not in shed
                and not (holding and any(row.supply == "off" for row in rows))
            )
            if not settled:
                await self.evaluate_account(uow, account_id, now=evaluate_at[account_id])

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
        policy = await self._cached_policy(session)
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
                    friendly=is_friendly(policy, now),
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
        """Keep reading partitions; post due fixed charges and debt recovery; re-decide
        every account's supply."""
        # The partitions are kept hourly on the timer; an explicit instant always runs them.
        due = self._partitions_kept_at is None or time.monotonic() - self._partitions_kept_at > 3600
        if now is not None or due:
            await self.keep_readings(now or utcnow())
        now = now or utcnow()
        async with self.store.sessionmaker() as session:
            account_ids = (await session.scalars(select(accounts.c.id))).all()
        for account_id in account_ids:
            async with self.store.unit_of_work() as uow:
                await self._post_calendar_charges(uow, account_id, now)
                await self.evaluate_account(uow, account_id, now=now)

    async def keep_readings(self, now: datetime) -> list[str]:
        """Create reading partitions ahead and drop expired ones; return those dropped."""
        async with self.engine.begin() as connection:
            dropped = await connection.run_sync(
                lambda sync: partitions.maintain(
                    sync, now=now, retention_days=self.settings.reading_retention_days
                )
            )
        self._partitions_kept_at = time.monotonic()
        if dropped:
            log.info("expired reading partitions dropped", extra={"partitions": dropped})
        return dropped

    async def _post_calendar_charges(self, uow: UnitOfWork, account_id: str, now: datetime) -> None:
        session = uow.session
        account = await self._account_row(session, account_id)
        policy = await self._cached_policy(session)
        today = now.astimezone(policy.zone).date()
        tariff = version_at(await self._cached_versions(session, account.tariff_id), now).definition
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

    async def _cached_policy(self, session: AsyncSession) -> SitePolicy:
        """The site policy, cached (see ``ReferenceCache``)."""
        policy = self._cache.policy()
        if policy is None:
            policy = self._cache.keep_policy(await self.policy(session))
        return policy

    async def _cached_versions(self, session: AsyncSession, tariff_id: str) -> list[TariffVersion]:
        """A tariff's versions, cached (see ``ReferenceCache``)."""
        versions = self._cache.versions(tariff_id)
        if versions is None:
            versions = self._cache.keep_versions(
                tariff_id, await self.tariff_versions(session, tariff_id)
            )
        return versions

    async def _cached_rater(
        self, session: AsyncSession, tariff_id: str, policy: SitePolicy
    ) -> Rater:
        """A rater over a tariff's cached versions in the site's zone."""
        versions = await self._cached_versions(session, tariff_id)
        kept = self._raters.get(tariff_id)
        if kept is None or kept[0] is not versions or kept[1].zone != policy.zone:
            kept = self._raters[tariff_id] = (versions, Rater(versions, policy.zone))
        return kept[1]

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
        self._cache.clear()
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
        local_prepaid: bool | None = None,
        local_price: Decimal | None = None,
    ) -> bool:
        """Bind a meter to an account; its first reading then fixes the starting register.

        ``local_prepaid`` flags a meter that keeps its own credit (None: as it is; a new
        binding is not), ``local_price`` the yuan per kWh it debits. Binding a meter again to
        its account changes only these two.
        """
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
                    await purchases.flag_meter(
                        uow,
                        meter_id=meter_id,
                        account_id=account_id,
                        local_prepaid=local_prepaid,
                        price=local_price,
                    )
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
                await purchases.flag_meter(
                    uow,
                    meter_id=meter_id,
                    account_id=account_id,
                    local_prepaid=local_prepaid,
                    price=local_price,
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
        self._cache.clear()


def readings_of(batch: list[Envelope]) -> Iterator[ReadingV1]:
    """The readings of ``reading.v1`` and ``reading.batch.v1`` messages, in order."""
    for envelope in batch:
        if envelope.type == ReadingBatchV1.TYPE:
            yield from open_envelope(envelope, ReadingBatchV1).readings
        else:
            yield open_envelope(envelope, ReadingV1)


def readings_carried(envelope: Envelope) -> int:
    """How many readings a message brings: the weight of a readings batch."""
    if envelope.type == ReadingBatchV1.TYPE:
        readings = envelope.payload.get("readings")
        return len(readings) if isinstance(readings, list) else 1
    return 1


async def balance_of(session: AsyncSession, account_id: str) -> Decimal:
    """Return an account's balance (the projection of the sum of its ledger entries)."""
    return await _balance(session, ledger.tenant_ledger(account_id))


async def arrears_of(session: AsyncSession, account_id: str) -> Decimal:
    """Return an account's arrears balance (negative = owed)."""
    return await _balance(session, ledger.arrears_ledger(account_id))


async def _balance(session: AsyncSession, ledger_account: str) -> Decimal:
    # billing_balances moves with every posting, in the same transaction (_post_many).
    total: Decimal | None = await session.scalar(
        select(balances.c.balance).where(balances.c.ledger_account == ledger_account)
    )
    return total if total is not None else ZERO


ENERGY_QUANTUM = Decimal("0.001")
USAGE_QUANTUM = Decimal("0.000001")


@dataclass
class Usage:
    """One meter's energy and cost on one local day, summed over a batch."""

    account_id: str
    metered_kwh: Decimal = ZERO
    billed_kwh: Decimal = ZERO
    cost: Decimal = ZERO


@dataclass
class BatchWork:
    """What rating a batch of readings leaves to write."""

    positions: dict[str, str] = field(default_factory=dict)  # JSON text by meter
    usage: dict[tuple[str, str], Usage] = field(default_factory=dict)
    charges: list[ledger.Transaction] = field(default_factory=list)
    # The read time of each account's last reading that moved a position.
    evaluate_at: dict[str, datetime] = field(default_factory=dict)

    def add_usage(
        self, meter_id: str, account_id: str, read_at: datetime, rating: Rating, policy: SitePolicy
    ) -> None:
        day = read_at.astimezone(policy.zone).date().isoformat()
        usage = self.usage.setdefault((meter_id, day), Usage(account_id))
        usage.metered_kwh += rating.metered_kwh.quantize(USAGE_QUANTUM)
        usage.billed_kwh += rating.billed_kwh.quantize(USAGE_QUANTUM)
        usage.cost += rating.charge


class ReferenceCache:
    """Tariff versions and the site policy, kept for ``ttl`` seconds.

    Billing drops the cache whenever it changes them itself; another billing replica's
    change is seen here within ``ttl`` (a new tariff version takes effect at an instant
    chosen ahead, so a few seconds of delay do not misprice anything scheduled normally).
    """

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._policy: tuple[float, SitePolicy] | None = None
        self._versions: dict[str, tuple[float, list[TariffVersion]]] = {}

    def clear(self) -> None:
        self._policy = None
        self._versions.clear()

    def policy(self) -> SitePolicy | None:
        if self._policy is None or time.monotonic() - self._policy[0] > self._ttl:
            return None
        return self._policy[1]

    def keep_policy(self, policy: SitePolicy) -> SitePolicy:
        self._policy = (time.monotonic(), policy)
        return policy

    def versions(self, tariff_id: str) -> list[TariffVersion] | None:
        kept = self._versions.get(tariff_id)
        if kept is None or time.monotonic() - kept[0] > self._ttl:
            return None
        return kept[1]

    def keep_versions(self, tariff_id: str, versions: list[TariffVersion]) -> list[TariffVersion]:
        self._versions[tariff_id] = (time.monotonic(), versions)
        return versions
