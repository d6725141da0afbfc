"""The calendar: reading partitions kept, fixed charges and daily debt recovery posted,
and every account's supply re-decided as friendly hours and holds begin and end."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator
from datetime import datetime

from prepaid_common.contracts import utcnow
from prepaid_common.outbox import ServiceStore, UnitOfWork
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from billing import partitions
from billing.decisions import SupplyDecisions
from billing.domain import ledger
from billing.domain.calendar_charges import monthly_charge_for, recoverable_debt
from billing.domain.rating import version_at
from billing.operations.site_office import SiteOfficeOperations
from billing.store import accounts as account_store
from billing.store import ledger as ledger_store
from billing.store import site_office as site_store
from billing.store import site_state
from billing.store.balances import arrears_of, balance_of
from billing.store.reference import ReferenceCache

log = logging.getLogger(__name__)

# The PostgreSQL advisory lock a replica holds while it sweeps: with several billing
# replicas, one sweeps at a time and the others skip that round (two at once would race
# to create the same reading partition, and to post one account's charges).
SWEEP_LOCK_KEY = int.from_bytes(hashlib.sha256(b"billing calendar sweep").digest()[:8], "big") >> 1


class BillingCalendar:
    """What billing does as time passes, whether or not readings arrive."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        store: ServiceStore,
        reference: ReferenceCache,
        decisions: SupplyDecisions,
        site_office: SiteOfficeOperations,
        retention_days: int,
        interval: float,
    ) -> None:
        self.engine = engine
        self.store = store
        self.reference = reference
        self.decisions = decisions
        self.site_office = site_office
        self.retention_days = retention_days
        self.interval = interval
        self._partitions_kept_at: float | None = None

    async def sweep(self, now: datetime | None = None) -> None:
        """Keep reading partitions; post due fixed charges and debt recovery; re-decide
        every account's supply."""
        # The partitions are kept hourly on the timer; an explicit instant always runs them.
        due = self._partitions_kept_at is None or time.monotonic() - self._partitions_kept_at > 3600
        if now is not None or due:
            await self.keep_readings(now or utcnow())
        now = now or utcnow()
        async with self.store.sessionmaker() as session:
            account_ids = await account_store.account_ids(session)
            # A moved-out or transferred account owes no more fixed charges or fees.
            closed = await site_store.closed_ids(session)
        for account_id in account_ids:
            if account_id in closed:
                continue
            async with self.store.unit_of_work() as uow:
                await self._post_calendar_charges(uow, account_id, now)
                await self.site_office.post_late_fees(uow, account_id, now)
                await self.decisions.evaluate_account(uow, account_id, now=now)

    async def keep_readings(self, now: datetime) -> list[str]:
        """Create reading partitions ahead and drop expired ones; return those dropped."""
        async with self.engine.begin() as connection:
            dropped = await connection.run_sync(
                lambda sync: partitions.maintain(sync, now=now, retention_days=self.retention_days)
            )
        self._partitions_kept_at = time.monotonic()
        if dropped:
            log.info("expired reading partitions dropped", extra={"partitions": dropped})
        return dropped

    async def sweep_unless_another_is(self) -> bool:
        """Sweep unless another replica is sweeping now; return whether this one swept."""
        async with self.sweep_lock() as held:
            if held:
                await self.sweep()
            return held

    @contextlib.asynccontextmanager
    async def sweep_lock(self) -> AsyncIterator[bool]:
        """Hold the sweep lock for the block if no other replica holds it; yield whether held.

        A session lock on a connection of its own, so that the sweep's transactions stay
        short; a replica that dies loses its connection and with it the lock.
        """
        if self.engine.dialect.name != "postgresql":
            yield True  # SQLite: one process (standalone)
            return
        async with self.engine.connect() as connection:
            key = {"key": SWEEP_LOCK_KEY}
            held = bool(await connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), key))
            await connection.commit()  # the lock outlives the transaction; no idle one kept
            try:
                yield held
            finally:
                if held:
                    try:
                        await connection.execute(text("SELECT pg_advisory_unlock(:key)"), key)
                        await connection.commit()
                    except BaseException:
                        # Never hand a connection still holding the lock back to the pool.
                        await connection.invalidate()
                        raise

    async def run_forever(self) -> None:
        """Sweep every ``interval`` seconds (one replica at a time); a failed sweep is logged
        and tried again."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.sweep_unless_another_is()
                async with self.store.sessionmaker() as session:
                    await site_state.measure(session)
            except Exception:
                log.exception("billing sweep failed")

    async def _post_calendar_charges(self, uow: UnitOfWork, account_id: str, now: datetime) -> None:
        session = uow.session
        account = await account_store.require_account(session, account_id)
        policy = await self.reference.policy(session)
        today = now.astimezone(policy.zone).date()
        versions = await self.reference.versions(session, account.tariff_id)
        tariff = version_at(versions, now).definition
        # Charges start on the day the account was opened; posting is idempotent per day.
        opened = account.created_at.astimezone(policy.zone).date()
        if tariff.daily_charge > 0 and today >= opened:
            await ledger_store.post(
                uow,
                ledger.fixed_charge(
                    account_id=account_id,
                    amount=tariff.daily_charge,
                    period=today.isoformat(),
                    what="daily",
                ),
            )
        # The month's charge, posted by the first sweep of the month (or of the opening
        # day): prorated by the days open in the month the account was opened.
        monthly = monthly_charge_for(
            amount=tariff.monthly_charge, month=today.replace(day=1), opened=opened
        )
        if monthly > 0:
            await ledger_store.post(
                uow,
                ledger.fixed_charge(
                    account_id=account_id,
                    amount=monthly,
                    period=today.strftime("%Y-%m"),
                    what="monthly",
                ),
            )
        if account.debt_daily > 0:
            # Only from credit the balance can bear: recovery never cuts a meter itself.
            amount = recoverable_debt(
                daily=account.debt_daily,
                owed=-(await arrears_of(session, account_id)),
                balance=await balance_of(session, account_id),
                trip_line=account.trip_line,
            )
            if amount > 0:
                await ledger_store.post(
                    uow,
                    ledger.daily_debt_recovery(
                        account_id=account_id, amount=amount, day=today.isoformat()
                    ),
                )
