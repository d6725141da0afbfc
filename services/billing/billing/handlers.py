"""Billing's bus message handlers: readings, payments and command outcomes, each one unit
of work (the bus wraps them so that each message takes effect once)."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from prepaid_common.bus.base import release_next_batch
from prepaid_common.contracts import (
    AnomalyV1,
    CommandOutcomeV1,
    Envelope,
    PaymentSucceededV1,
    ReadingBatchV1,
    ReadingV1,
    open_envelope,
    utcnow,
)
from prepaid_common.outbox import UnitOfWork

from billing import bulk, purchases
from billing.decisions import SupplyDecisions
from billing.domain import ledger
from billing.domain.accounts import lifts_above_cap
from billing.domain.money import ZERO
from billing.domain.rater import Rater, position_text
from billing.domain.rating import MeterReading, Rating, TariffVersion, Verdict
from billing.domain.supply import SitePolicy
from billing.domain.tariffs import PeriodEnergy
from billing.metrics import LAG, READINGS_RATED
from billing.positions import PositionCache
from billing.store import accounts as account_store
from billing.store import ledger as ledger_store
from billing.store import top_up_holds
from billing.store.anomalies import (
    end_reading_episodes,
    keep_anomaly,
    record_anomaly,
    record_reading_anomaly,
)
from billing.store.balances import arrears_of, balance_of
from billing.store.meters import bindings_for_rating
from billing.store.reference import ReferenceCache

ENERGY_QUANTUM = Decimal("0.001")
USAGE_QUANTUM = Decimal("0.000001")


class BillingHandlers:
    """Readings in, money and supply decisions out."""

    def __init__(
        self,
        *,
        reference: ReferenceCache,
        decisions: SupplyDecisions,
        positions: PositionCache,
        max_power_kw: Decimal,
        local_credit_tolerance: Decimal,
    ) -> None:
        self.reference = reference
        self.decisions = decisions
        # Parsed rating positions between batches, checked against the stored text.
        self.positions = positions
        # Above this average power between two readings a jump is refused as implausible.
        self.max_power_kw = max_power_kw
        self.local_credit_tolerance = local_credit_tolerance
        self._raters: dict[str, tuple[list[TariffVersion], Rater]] = {}

    # --- readings ----------------------------------------------------------------------
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
            LAG.observe(max(0.0, (received - reading.read_at).total_seconds()))
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
        bindings = await bindings_for_rating(session, list(by_meter))
        # This batch now holds its meters' row locks: a later batch touching one of them
        # waits for this commit, so the bus may start the next batch meanwhile.
        release_next_batch()
        policy = await self.reference.policy(session)
        verdicts: Tally[str] = Tally()
        work = BatchWork()
        for meter_id, meter_readings in by_meter.items():
            binding = bindings.get(meter_id)
            if binding is None:
                verdicts["unbound"] += len(meter_readings)
                continue
            rater = await self._rater(uow, binding.tariff_id or binding.account_tariff, policy)
            await self._rate_meter(uow, work, binding, meter_readings, rater, policy, verdicts)
        for verdict, count in verdicts.items():
            READINGS_RATED.labels(verdict).inc(count)
        await bulk.update_positions(session, work.positions)
        # A meter whose reading moved on is out of its episode of refused readings.
        await end_reading_episodes(session, work.positions.keys(), READING_ANOMALIES)
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
            await ledger_store.post_many(uow, work.charges)
        await purchases.check_readings(
            uow, by_meter, record_anomaly, tolerance=self.local_credit_tolerance
        )
        await self.decisions.evaluate_after_readings(uow, bindings, work.evaluate_at)

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
        position = self.positions.load(meter_id, binding.position)
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
            if rating.verdict.value in READING_ANOMALIES:
                await record_reading_anomaly(uow, meter_id, rating.verdict.value, rating.detail)
                continue
            if rating.verdict is Verdict.STALE:
                continue
            position = rating.position
            moved = True
            # A reading older than the start (rated late) must not move the evaluation back.
            latest = work.evaluate_at.get(account_id)
            if latest is None or reading.read_at > latest:
                work.evaluate_at[account_id] = reading.read_at
            if rating.verdict is Verdict.CHARGE:
                work.add_usage(meter_id, account_id, reading.read_at, rating, policy)
                if rating.charge != 0:
                    charged += rating.charge
                    charged_to = f"{energy}@{reading.read_at.isoformat()}"
        if moved:
            text = work.positions[meter_id] = position_text(position)
            # Used by a later batch only if this text is what it finds stored.
            self.positions.keep(meter_id, text, position)
        if charged_to and charged != 0:
            work.charges.append(
                ledger.consumption_charge(
                    account_id=account_id,
                    meter_id=meter_id,
                    amount=charged,
                    position_key=charged_to,
                )
            )

    async def _rater(self, uow: UnitOfWork, tariff_id: str, policy: SitePolicy) -> Rater:
        """A rater over a tariff's cached versions in the site's zone."""
        versions = await self.reference.versions(uow.session, tariff_id)
        kept = self._raters.get(tariff_id)
        if kept is None or kept[0] is not versions or kept[1].zone != policy.zone:
            kept = self._raters[tariff_id] = (versions, Rater(versions, policy.zone))
        return kept[1]

    # --- payments and outcomes ---------------------------------------------------------
    async def handle_payment(self, uow: UnitOfWork, envelope: Envelope) -> None:
        """Credit a payment once (less any debt share) and restore supply if it is enough."""
        payment = open_envelope(envelope, PaymentSucceededV1)
        # Queued behind (and ahead of) the account's cap checks: balance and holds agree.
        await top_up_holds.lock_account(uow.session, payment.account_id)
        account = await account_store.account_row(uow.session, payment.account_id)
        if account is None:
            # The gateway checks accounts before taking cash; a provider payment for an
            # unknown account is an operator matter, and must not loop on the bus.
            await record_anomaly(
                uow, "-", "payment_unknown_account", f"payment {payment.payment_id}"
            )
            return
        balance = await balance_of(uow.session, payment.account_id)
        if lifts_above_cap(balance=balance, amount=payment.amount, cap=account.balance_cap):
            # The money was taken already (a provider): credit it, and tell an operator.
            await record_anomaly(
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
            operator=payment.operator or "system",
        )
        posted = await ledger_store.post(uow, top_up, announce=True)
        if payment.method == "cash":
            await top_up_holds.mark_credited(uow.session, payment.account_id, payment.reference)
        await self.decisions.evaluate_account(uow, payment.account_id, now=utcnow())
        if posted is not None:
            # A local-prepaid meter gets the credit pushed too, once per payment.
            await purchases.queue_purchase(uow, top_up)

    async def handle_anomaly(self, uow: UnitOfWork, envelope: Envelope) -> None:
        """Put the field's anomalies from other services on the operators' list."""
        if envelope.producer == "billing":
            return  # billing's own are on the list already
        anomaly = open_envelope(envelope, AnomalyV1)
        await keep_anomaly(
            uow.session,
            meter_id=anomaly.meter_id,
            kind=anomaly.kind,
            detail=anomaly.detail,
            at=anomaly.at,
        )

    async def handle_outcome(self, uow: UnitOfWork, envelope: Envelope) -> None:
        """Follow the pushes of purchases to local-prepaid meters (relay outcomes: nothing)."""
        outcome = open_envelope(envelope, CommandOutcomeV1)
        await purchases.take_outcome(uow, outcome, record_anomaly)


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


@dataclass
class Usage:
    """One meter's energy and cost on one local day, summed over a batch."""

    account_id: str
    metered_kwh: Decimal = ZERO
    billed_kwh: Decimal = ZERO
    cost: Decimal = ZERO


# Readings refused by rating: each meter's run of one kind is one anomaly with a count.
READING_ANOMALIES = frozenset(
    verdict.value for verdict in (Verdict.BACKWARDS, Verdict.IMPLAUSIBLE, Verdict.BEFORE_START)
)


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
        """Add a charged reading's energy and cost to its meter's local day."""
        day = read_at.astimezone(policy.zone).date().isoformat()
        usage = self.usage.setdefault((meter_id, day), Usage(account_id))
        usage.metered_kwh += rating.metered_kwh.quantize(USAGE_QUANTUM)
        usage.billed_kwh += rating.billed_kwh.quantize(USAGE_QUANTUM)
        usage.cost += rating.charge
