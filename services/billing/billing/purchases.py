"""Purchases for local-prepaid meters: the database side of ``domain.local_credit``.

A top-up of an account with a local-prepaid meter queues one purchase for that meter, once
per operation key. Purchases go to control one at a time per meter, in count order (the
meter takes only its count + 1): the next is pushed when the previous one is delivered.
Control's outcome moves a push on (delivered; refused by the meter, which an operator must
look at; or failed or expired, pushed again at the meter's next reading, same count). Every
reading of the meter confirms what its count says it took and is compared with the ledger.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from prepaid_common.contracts import CommandOutcomeV1, CreditRequestedV1, ReadingV1, utcnow
from prepaid_common.errors import Conflict, Invalid, NotFound
from prepaid_common.outbox import UnitOfWork
from sqlalchemy import delete, func, insert, select, update

from billing import bulk
from billing.domain import ledger
from billing.domain.local_credit import (
    Finding,
    MeterShows,
    Pushed,
    compare,
    next_purchase_count,
)
from billing.domain.money import FEN
from billing.tables import local_meters, meters, purchases

# What an anomaly is recorded with: (unit of work, meter id, kind, detail).
RecordAnomaly = Callable[[UnitOfWork, str, str, str], Awaitable[None]]

QUEUED, SENT, DELIVERED, REFUSED, CANCELLED = "queued", "sent", "delivered", "refused", "cancelled"
OPEN_STATUSES = (QUEUED, SENT, REFUSED)
ENERGY_QUANTUM = Decimal("0.001")


# --- flagging meters -----------------------------------------------------------------------
async def flag_meter(
    uow: UnitOfWork,
    *,
    meter_id: str,
    account_id: str,
    local_prepaid: bool | None,
    price: Decimal | None,
) -> None:
    """Make a bound meter local-prepaid (or not), or change the price it debits.

    ``None`` leaves the flag as it is. An account has at most one local-prepaid meter: a
    top-up becomes one purchase, and pushing it to two meters would double the money.
    """
    session = uow.session
    current = (
        await session.execute(
            select(local_meters).where(local_meters.c.meter_id == meter_id).with_for_update()
        )
    ).first()
    wanted = local_prepaid if local_prepaid is not None else current is not None
    if not wanted:
        if price is not None:
            raise Invalid(f"meter {meter_id}: local_price is for local-prepaid meters")
        if current is not None:
            await session.execute(delete(local_meters).where(local_meters.c.meter_id == meter_id))
            await session.execute(
                update(purchases)
                .where(purchases.c.meter_id == meter_id, purchases.c.status.in_(OPEN_STATUSES))
                .values(status=CANCELLED, request_id=None, updated_at=utcnow())
            )
        return
    other = await session.scalar(
        select(local_meters.c.meter_id)
        .join(meters, meters.c.meter_id == local_meters.c.meter_id)
        .where(meters.c.account_id == account_id, local_meters.c.meter_id != meter_id)
    )
    if other is not None:
        raise Conflict(f"account {account_id} already has local-prepaid meter {other}")
    if current is None:
        now = utcnow()
        # Flagged before? Its old purchases keep their epoch; this flag counts afresh.
        last_epoch = await session.scalar(
            select(func.max(purchases.c.epoch)).where(purchases.c.meter_id == meter_id)
        )
        await session.execute(
            insert(local_meters).values(
                meter_id=meter_id,
                price=price,
                epoch=0 if last_epoch is None else last_epoch + 1,
                # The baseline is a reading taken from now on, not one already on its way.
                read_at=now,
                count_alarm=False,
                credit_alarm=False,
                created_at=now,
            )
        )
    elif price is not None and price != current.price:
        await session.execute(
            update(local_meters).where(local_meters.c.meter_id == meter_id).values(price=price)
        )


async def resync(uow: UnitOfWork, meter_id: str) -> None:
    """Start the comparisons again from the meter's next reading (an operator's decision
    after a refusal, a repair or a reset): purchases not delivered count from there."""
    session = uow.session
    row = (
        await session.execute(
            select(local_meters).where(local_meters.c.meter_id == meter_id).with_for_update()
        )
    ).first()
    if row is None:
        raise NotFound(f"meter {meter_id} is not local-prepaid")
    in_flight = await session.scalar(
        select(purchases.c.purchase_count).where(
            purchases.c.meter_id == meter_id, purchases.c.status == SENT
        )
    )
    if in_flight is not None:
        raise Conflict(f"meter {meter_id}: purchase {in_flight} is being pushed; retry later")
    await session.execute(
        update(local_meters)
        .where(local_meters.c.meter_id == meter_id)
        .values(
            epoch=row.epoch + 1,
            baseline_count=None,
            baseline_credit=None,
            baseline_kwh=None,
            baseline_at=None,
            read_at=utcnow(),  # the new baseline is a reading taken from now on
            count_alarm=False,
            credit_alarm=False,
        )
    )
    await session.execute(
        update(purchases)
        .where(purchases.c.meter_id == meter_id, purchases.c.status.in_(OPEN_STATUSES))
        .values(
            epoch=row.epoch + 1,
            purchase_count=None,
            status=QUEUED,
            request_id=None,
            updated_at=utcnow(),
        )
    )


# --- purchases in --------------------------------------------------------------------------
async def queue_purchase(uow: UnitOfWork, txn: ledger.Transaction) -> str | None:
    """Queue a top-up's credit for its account's local-prepaid meter, once per operation key,
    and push it if nothing else is in flight. Return the purchase's id (None: no such meter
    or nothing credited to the tenant)."""
    amount = txn.amount_for(ledger.tenant_ledger(txn.account_id))
    if amount <= 0:
        return None  # all of it went to arrears
    session = uow.session
    local = (
        await session.execute(
            select(local_meters)
            .join(meters, meters.c.meter_id == local_meters.c.meter_id)
            .where(meters.c.account_id == txn.account_id)
            .with_for_update(of=local_meters)
        )
    ).first()
    if local is None:
        return None
    known: str | None = await session.scalar(
        select(purchases.c.id).where(
            purchases.c.meter_id == local.meter_id,
            purchases.c.operation_key == txn.operation_key,
        )
    )
    if known is not None:
        return known
    count = None
    if local.baseline_count is not None:
        assigned = await session.scalars(
            select(purchases.c.purchase_count).where(
                purchases.c.meter_id == local.meter_id,
                purchases.c.epoch == local.epoch,
                purchases.c.purchase_count.is_not(None),
            )
        )
        count = next_purchase_count(local.baseline_count, assigned.all())
    purchase_id = str(uuid.uuid4())
    now = utcnow()
    await session.execute(
        insert(purchases).values(
            id=purchase_id,
            meter_id=local.meter_id,
            account_id=txn.account_id,
            operation_key=txn.operation_key,
            amount=amount,
            epoch=local.epoch,
            purchase_count=count,
            status=QUEUED,
            request_id=None,
            pushes=0,
            error="",
            created_at=now,
            updated_at=now,
            confirmed_at=None,
        )
    )
    await push_next(uow, local.meter_id)
    return purchase_id


async def push_next(uow: UnitOfWork, meter_id: str) -> None:
    """Push the meter's lowest queued purchase, unless one is in flight or was refused."""
    rows = (
        await uow.session.execute(
            select(purchases).where(
                purchases.c.meter_id == meter_id, purchases.c.status.in_(OPEN_STATUSES)
            )
        )
    ).all()
    if any(row.status in (SENT, REFUSED) for row in rows):
        return
    ready = [row for row in rows if row.purchase_count is not None]
    if ready:
        await _send(uow, min(ready, key=lambda row: row.purchase_count))


async def _send(uow: UnitOfWork, row: Any) -> None:
    request_id = str(uuid.uuid4())
    now = utcnow()
    await uow.session.execute(
        update(purchases)
        .where(purchases.c.id == row.id)
        .values(status=SENT, request_id=request_id, pushes=row.pushes + 1, updated_at=now)
    )
    await uow.emit(
        CreditRequestedV1(
            request_id=request_id,
            meter_id=row.meter_id,
            account_id=row.account_id,
            amount=row.amount,
            purchase_count=row.purchase_count,
            operation_key=row.operation_key,
            at=now,
        )
    )


# --- what comes back -----------------------------------------------------------------------
async def take_outcome(
    uow: UnitOfWork, outcome: CommandOutcomeV1, record_anomaly: RecordAnomaly
) -> None:
    """Move a push on by control's final word on it."""
    if outcome.action != "credit" or outcome.request_id is None:
        return
    session = uow.session
    row = (
        await session.execute(select(purchases).where(purchases.c.request_id == outcome.request_id))
    ).first()
    if row is None or row.status != SENT:
        return  # confirmed by a reading already, or re-synchronised since
    await session.execute(
        select(local_meters.c.meter_id)
        .where(local_meters.c.meter_id == row.meter_id)
        .with_for_update()
    )
    now = utcnow()
    changes: dict[str, Any] = {"error": outcome.error[:400], "updated_at": now}
    if outcome.status == "succeeded":
        changes |= {"status": DELIVERED, "confirmed_at": now}
    elif outcome.status == "failed" and not outcome.retryable:
        changes["status"] = REFUSED
        await record_anomaly(
            uow,
            row.meter_id,
            "purchase_refused",
            f"purchase {row.purchase_count} of {row.amount} yuan ({row.operation_key}) "
            f"refused: {outcome.error}",
        )
    else:
        changes["status"] = QUEUED  # pushed again, same count, at the meter's next reading
    await session.execute(update(purchases).where(purchases.c.id == row.id).values(**changes))
    if outcome.status == "succeeded":
        await push_next(uow, row.meter_id)


@dataclass
class _Purchase:
    """A purchase as the readings of one batch move it."""

    id: str
    count: int | None
    amount: Decimal
    status: str
    pushes: int
    confirmed_at: datetime | None
    changed: bool = False

    def pushed(self) -> Pushed | None:
        if self.count is None or self.pushes == 0:
            return None
        confirmed = self.confirmed_at if self.status == DELIVERED else None
        return Pushed(self.count, self.amount, confirmed)


async def check_readings(
    uow: UnitOfWork,
    by_meter: Mapping[str, Sequence[ReadingV1]],
    record_anomaly: RecordAnomaly,
    *,
    tolerance: Decimal,
) -> None:
    """Compare the read-back of local-prepaid meters in a batch of readings with the ledger."""
    wanted = sorted(
        meter_id
        for meter_id, readings in by_meter.items()
        if any(_shows(reading) is not None for reading in readings)
    )
    if not wanted:
        return
    session = uow.session
    rows = (
        await session.execute(
            select(local_meters)
            .where(bulk.one_of(session, local_meters.c.meter_id, wanted))
            .order_by(local_meters.c.meter_id)
            .with_for_update()
        )
    ).all()
    for row in rows:
        await _take_readings(uow, row, by_meter[row.meter_id], record_anomaly, tolerance)


def _shows(reading: ReadingV1) -> MeterShows | None:
    if reading.purchase_count is None or reading.local_credit is None:
        return None
    return MeterShows(
        count=reading.purchase_count,
        credit=reading.local_credit.quantize(FEN, rounding=ROUND_FLOOR),
        energy_kwh=reading.energy_kwh.quantize(ENERGY_QUANTUM),
        read_at=reading.read_at,
    )


async def _take_readings(
    uow: UnitOfWork,
    row: Any,
    readings: Sequence[ReadingV1],
    record_anomaly: RecordAnomaly,
    tolerance: Decimal,
) -> None:
    session = uow.session
    meter_id = row.meter_id
    baseline = None
    if row.baseline_count is not None:
        baseline = MeterShows(
            row.baseline_count, row.baseline_credit, row.baseline_kwh, row.baseline_at
        )
    bought = [
        _Purchase(p.id, p.purchase_count, p.amount, p.status, p.pushes, p.confirmed_at)
        for p in (
            await session.execute(
                select(purchases)
                .where(purchases.c.meter_id == meter_id, purchases.c.epoch == row.epoch)
                .order_by(purchases.c.created_at, purchases.c.id)
            )
        ).all()
    ]
    alarms = {"purchase_count_mismatch": row.count_alarm, "local_credit_mismatch": row.credit_alarm}
    latest: MeterShows | None = None
    last_at: datetime | None = row.read_at
    for reading in readings:
        shows = _shows(reading)
        if shows is None or (last_at is not None and shows.read_at <= last_at):
            continue  # no read-back, or older than what was compared already
        latest, last_at = shows, shows.read_at
        if baseline is None:
            baseline = shows
            _number(bought, baseline.count)
            continue
        pushed = [p for p in (purchase.pushed() for purchase in bought) if p is not None]
        comparison = compare(baseline, pushed, shows, price=row.price, tolerance=tolerance)
        for purchase in bought:
            pushed_before = purchase.status in (SENT, QUEUED) and purchase.pushes > 0
            if pushed_before and purchase.count is not None and comparison.confirms(purchase.count):
                purchase.status = DELIVERED
                purchase.confirmed_at = shows.read_at
                purchase.changed = True
        for finding, kind in (
            (comparison.count, "purchase_count_mismatch"),
            (comparison.credit, "local_credit_mismatch"),
        ):
            alarms[kind] = await _alarm(uow, meter_id, finding, alarms[kind], record_anomaly)
    if latest is None:
        return
    assert baseline is not None
    await session.execute(
        update(local_meters)
        .where(local_meters.c.meter_id == meter_id)
        .values(
            baseline_count=baseline.count,
            baseline_credit=baseline.credit,
            baseline_kwh=baseline.energy_kwh,
            baseline_at=baseline.read_at,
            meter_count=latest.count,
            meter_credit=latest.credit,
            meter_kwh=latest.energy_kwh,
            read_at=latest.read_at,
            count_alarm=alarms["purchase_count_mismatch"],
            credit_alarm=alarms["local_credit_mismatch"],
        )
    )
    now = utcnow()
    for purchase in bought:
        if purchase.changed:
            await session.execute(
                update(purchases)
                .where(purchases.c.id == purchase.id)
                .values(
                    purchase_count=purchase.count,
                    status=purchase.status,
                    confirmed_at=purchase.confirmed_at,
                    updated_at=now,
                )
            )
    await push_next(uow, meter_id)


def _number(bought: list[_Purchase], baseline_count: int) -> None:
    """Give each purchase waiting for the meter's count the next one, in queue order."""
    assigned = [p.count for p in bought if p.count is not None]
    for purchase in bought:
        if purchase.count is None:
            purchase.count = next_purchase_count(baseline_count, assigned)
            purchase.changed = True
            assigned.append(purchase.count)


async def _alarm(
    uow: UnitOfWork,
    meter_id: str,
    finding: Finding | None,
    raised: bool,
    record_anomaly: RecordAnomaly,
) -> bool:
    """Report a mismatch once, when it starts; return whether one is standing."""
    if finding is None:
        return False
    if not raised:
        await record_anomaly(uow, meter_id, finding.kind, finding.detail)
    return True
