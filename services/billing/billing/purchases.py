"""Purchases for local-prepaid meters: the database side of ``domain.local_credit``.

A top-up of an account with a local-prepaid meter queues one purchase for that meter, once
per operation key; flagging a meter queues the balance its account holds then. Purchases go
to control one at a time per meter, in count order (the meter takes only its count + 1):
the next is pushed when the previous one is delivered, numbered above the count the meter
last reported (a purchase made at the meter by another vending system took a count the
ledger never gave out). Control's outcome moves a push on (delivered; refused by the meter,
which an operator must look at; or failed or expired, pushed again at the meter's next
reading, same count). Every reading of the meter confirms what its count says it took, when
its credit shows the money too, and is compared with the ledger.
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
    Comparison,
    Finding,
    MeterShows,
    Pushed,
    compare,
    credit_shows,
    next_purchase_count,
)
from billing.domain.money import FEN
from billing.tables import balances, local_meters, meters, purchases

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
        epoch = 0 if last_epoch is None else last_epoch + 1
        await session.execute(
            insert(local_meters).values(
                meter_id=meter_id,
                price=price,
                epoch=epoch,
                # The baseline is a reading taken from now on, not one already on its way.
                read_at=now,
                count_alarm=False,
                credit_alarm=False,
                created_at=now,
            )
        )
        await _queue_held_balance(uow, meter_id=meter_id, account_id=account_id, epoch=epoch)
    elif price is not None and price != current.price:
        await session.execute(
            update(local_meters).where(local_meters.c.meter_id == meter_id).values(price=price)
        )


async def _queue_held_balance(
    uow: UnitOfWork, *, meter_id: str, account_id: str, epoch: int
) -> None:
    """Queue the balance the account holds as the meter's first purchase.

    Top-ups before the flag were not pushed anywhere, so without it the meter would cut the
    tenant off while the ledger still holds their money. Once per flag: posting the binding
    again changes only the price. Its count waits for the meter's first reading.
    """
    # Locked, so that a top-up being posted now is either in this balance (it committed
    # first) or sees the flag and queues its own purchase (it waits for this commit).
    held: Decimal | None = await uow.session.scalar(
        select(balances.c.balance)
        .where(balances.c.ledger_account == ledger.tenant_ledger(account_id))
        .with_for_update()
    )
    if held is None or held <= 0:
        return
    await _insert_purchase(
        uow,
        meter_id=meter_id,
        account_id=account_id,
        operation_key=f"flagged:{epoch}",
        amount=held,
        epoch=epoch,
        count=None,
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
        count = next_purchase_count(_reported_count(local), assigned.all())
    purchase_id = await _insert_purchase(
        uow,
        meter_id=local.meter_id,
        account_id=txn.account_id,
        operation_key=txn.operation_key,
        amount=amount,
        epoch=local.epoch,
        count=count,
    )
    await push_next(uow, local.meter_id)
    return purchase_id


async def _insert_purchase(
    uow: UnitOfWork,
    *,
    meter_id: str,
    account_id: str,
    operation_key: str,
    amount: Decimal,
    epoch: int,
    count: int | None,
) -> str:
    purchase_id = str(uuid.uuid4())
    now = utcnow()
    await uow.session.execute(
        insert(purchases).values(
            id=purchase_id,
            meter_id=meter_id,
            account_id=account_id,
            operation_key=operation_key,
            amount=amount,
            epoch=epoch,
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
    return purchase_id


def _reported_count(local: Any) -> int:
    """The highest count the meter has shown since its baseline (the baseline is known)."""
    reported: int = max(local.baseline_count, local.meter_count or local.baseline_count)
    return reported


async def push_next(uow: UnitOfWork, meter_id: str) -> None:
    """Push the meter's lowest queued purchase, unless one is in flight or was refused.

    A purchase never pushed goes out above the count the meter last reported: a count it
    has already (taken by a purchase made elsewhere) would be answered "already have it"
    and never add the money. Those waiting behind it move up with it, in order.
    """
    session = uow.session
    rows = (
        await session.execute(
            select(purchases).where(
                purchases.c.meter_id == meter_id, purchases.c.status.in_(OPEN_STATUSES)
            )
        )
    ).all()
    if any(row.status in (SENT, REFUSED) for row in rows):
        return
    ready = sorted(
        (row for row in rows if row.purchase_count is not None),
        key=lambda row: row.purchase_count,
    )
    if not ready:
        return
    first = ready[0]
    if first.pushes == 0:
        local = (
            await session.execute(select(local_meters).where(local_meters.c.meter_id == meter_id))
        ).first()
        if local is not None and local.baseline_count is not None:
            fresh = [row for row in ready if row.pushes == 0]
            others = await session.scalars(
                select(purchases.c.purchase_count).where(
                    purchases.c.meter_id == meter_id,
                    purchases.c.epoch == local.epoch,
                    purchases.c.purchase_count.is_not(None),
                    purchases.c.id.not_in([row.id for row in fresh]),
                )
            )
            floor = next_purchase_count(_reported_count(local), others.all()) - 1
            if first.purchase_count <= floor:
                await _renumber(session, [row.id for row in fresh], above=floor)
                first = (
                    await session.execute(select(purchases).where(purchases.c.id == first.id))
                ).one()
    await _send(uow, first)


async def _renumber(session: Any, purchase_ids: Sequence[str], *, above: int) -> None:
    """Give these purchases (in this order) the counts right above ``above``."""
    now = utcnow()
    # Cleared first: the counts are unique per meter and epoch, and the new ones overlap
    # the old ones.
    await session.execute(
        update(purchases).where(purchases.c.id.in_(purchase_ids)).values(purchase_count=None)
    )
    for offset, purchase_id in enumerate(purchase_ids, start=1):
        await session.execute(
            update(purchases)
            .where(purchases.c.id == purchase_id)
            .values(purchase_count=above + offset, updated_at=now)
        )


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
    request_id: str | None
    error: str
    changed: bool = False
    # Numbered again in this batch: not pushed with its new count yet.
    counted_again: bool = False

    def pushed(self) -> Pushed | None:
        if self.count is None or self.pushes == 0 or self.counted_again:
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
        _Purchase(
            p.id,
            p.purchase_count,
            p.amount,
            p.status,
            p.pushes,
            p.confirmed_at,
            p.request_id,
            p.error,
        )
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
    # The read-back before each reading: what a purchase's money is weighed from.
    previous = baseline
    if baseline is not None and row.meter_count is not None:
        previous = MeterShows(row.meter_count, row.meter_credit, row.meter_kwh, row.read_at)
    for reading in readings:
        shows = _shows(reading)
        if shows is None or (last_at is not None and shows.read_at <= last_at):
            continue  # no read-back, or older than what was compared already
        latest, last_at = shows, shows.read_at
        if baseline is None or previous is None:
            baseline = previous = shows
            _number(bought, baseline.count)
            continue
        comparison, held = _settle_pushes(bought, baseline, previous, shows, row.price, tolerance)
        previous = shows
        for finding, kind in (
            (comparison.count, "purchase_count_mismatch"),
            (comparison.credit, "local_credit_mismatch"),
        ):
            alarms[kind] = await _alarm(uow, meter_id, finding, alarms[kind], record_anomaly)
        for purchase in held:
            await record_anomaly(uow, meter_id, "purchase_refused", purchase.error)
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
    changed = [purchase.id for purchase in bought if purchase.changed]
    if changed:
        # Counts are unique per meter and epoch and may have moved up past each other.
        await session.execute(
            update(purchases).where(purchases.c.id.in_(changed)).values(purchase_count=None)
        )
    for purchase in bought:
        if purchase.changed:
            await session.execute(
                update(purchases)
                .where(purchases.c.id == purchase.id)
                .values(
                    purchase_count=purchase.count,
                    status=purchase.status,
                    confirmed_at=purchase.confirmed_at,
                    request_id=purchase.request_id,
                    error=purchase.error[:400],
                    updated_at=now,
                )
            )
    await push_next(uow, meter_id)


def _pushed(bought: Sequence[_Purchase]) -> list[Pushed]:
    return [p for p in (purchase.pushed() for purchase in bought) if p is not None]


def _settle_pushes(
    bought: list[_Purchase],
    baseline: MeterShows,
    previous: MeterShows,
    shows: MeterShows,
    price: Decimal | None,
    tolerance: Decimal,
) -> tuple[Comparison, list[_Purchase]]:
    """Confirm the pushes this reading's count includes, if its credit shows their money;
    a count the meter reached without it was taken by a purchase made elsewhere: ours is
    numbered above it, to go out again. Return the reading held against the ledger, and the
    pushes held for an operator (no price to weigh the credit with)."""
    comparison = compare(baseline, _pushed(bought), shows, price=price, tolerance=tolerance)
    unsure = [
        p
        for p in bought
        if p.status in (SENT, QUEUED)
        and p.pushes > 0
        and p.count is not None
        and p.count <= shows.count
    ]
    if not unsure:
        return comparison, []
    if price is None:
        # Without the meter's price its credit cannot be weighed: the count decides, unless
        # the meter is ahead of every push (then its count says nothing about ours).
        landed = all(comparison.confirms(p.count) for p in unsure if p.count is not None)
    else:
        # A count the meter showed already at the read-back before was not reached by this
        # push (it would have been weighed then): made elsewhere, whatever the credit says.
        landed = all(p.count > previous.count for p in unsure if p.count is not None)
        landed = landed and credit_shows(
            previous, _pushed(bought), shows, price=price, tolerance=tolerance
        )
    if landed:
        for purchase in unsure:
            purchase.status = DELIVERED
            purchase.confirmed_at = shows.read_at
            purchase.changed = True
        return comparison, []
    if price is None:
        # Ours, or made elsewhere under the same count? Pushing it again could give the
        # money twice, waiting for ever gives it never: an operator checks the meter.
        for purchase in unsure:
            purchase.status = REFUSED
            purchase.error = (
                f"purchase {purchase.count} of {purchase.amount} yuan held: the meter's count "
                f"{shows.count} passed it with purchases made elsewhere, and without a "
                "local_price its credit cannot show whether it has this one; check the "
                "meter, then re-sync"
            )
            purchase.request_id = None
            purchase.changed = True
        return comparison, unsure
    for purchase in unsure:
        purchase.error = (
            f"count {purchase.count} reached without its {purchase.amount} yuan "
            f"(meter shows {shows.credit} at count {shows.count}): counted again"
        )
        purchase.count = None
        purchase.status = QUEUED
        purchase.request_id = None  # a late outcome of that push changes nothing
        purchase.counted_again = purchase.changed = True
    for purchase in bought:
        if purchase.status == QUEUED and purchase.pushes == 0 and purchase.count is not None:
            purchase.count = None  # behind the one counted again, in the order they were paid
    _number(bought, shows.count)
    return compare(baseline, _pushed(bought), shows, price=price, tolerance=tolerance), []


def _number(bought: list[_Purchase], meter_count: int) -> None:
    """Give each purchase waiting for a count the next one above the meter's and every count
    given out, in queue order."""
    assigned = [p.count for p in bought if p.count is not None]
    for purchase in bought:
        if purchase.count is None:
            purchase.count = next_purchase_count(meter_count, assigned)
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
