"""The ledger: posting transactions (the one writer of entries and balances) and reading
them back: an account's lines, sums for statements, and the whole ledger's check."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any
from weakref import WeakKeyDictionary

from prepaid_common.contracts import BalanceChangedV1, utcnow
from prepaid_common.contracts.api.billing import LedgerCheck, LedgerLine, Page
from prepaid_common.outbox import UnitOfWork
from sqlalchemy import String, func, literal, null, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from billing import bulk
from billing.domain import ledger
from billing.domain.money import ZERO
from billing.ids import new_ids
from billing.metrics import TRANSACTIONS_POSTED, count_money_in
from billing.store.balances import balance_of
from billing.store.locks import lock_meters_of
from billing.tables import balances, entries, transactions


async def post(uow: UnitOfWork, txn: ledger.Transaction, *, announce: bool = False) -> str | None:
    """Post a transaction unless its operation key was already posted; return its id.

    The meters of the tenants it moves are locked first (the order in store/locks.py)."""
    await lock_meters_of(
        uow.session,
        (
            entry.ledger_account.removeprefix(ledger.TENANT_PREFIX)
            for entry in txn.entries
            if entry.ledger_account.startswith(ledger.TENANT_PREFIX)
        ),
    )
    posted = await post_many(uow, [txn])
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


async def post_many(uow: UnitOfWork, txns: Sequence[ledger.Transaction]) -> dict[str, str]:
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
            count_money_in(entry.ledger_account, entry.amount)
        kinds[txn.kind] += 1
    if not headers:
        return posted
    for kind, count in kinds.items():
        TRANSACTIONS_POSTED.labels(kind).inc(count)
    await bulk.insert_postings(session, headers, lines)
    await bulk.move_balances(
        session, {name: amount for name, amount in moves.items() if ledger.is_tenants(name)}
    )
    _move_house_balances_last(
        uow, {name: amount for name, amount in moves.items() if not ledger.is_tenants(name)}
    )
    return posted


# The house accounts' moves not yet written, by unit of work (see _move_house_balances_last).
_HOUSE_MOVES: WeakKeyDictionary[UnitOfWork, dict[str, Decimal]] = WeakKeyDictionary()


def _move_house_balances_last(uow: UnitOfWork, moves: dict[str, Decimal]) -> None:
    """Move the house accounts' balances (revenue, clearing, adjustment) at the very end of
    the transaction, summed over every posting in it.

    Every batch of readings moves ``revenue:energy``: written where it is posted, its row
    lock would be held through the rest of the batch (purchases, relay decisions), and
    concurrent batches (billing replicas, shard queues) would queue on that one row. Taken
    last, it is held for the commit only. Balances are locked in one order everywhere: a
    tenant's rows first, the house rows last (store/locks.py). Nothing reads a house
    balance inside the transaction that moves it.
    """
    if not moves:
        return
    pending = _HOUSE_MOVES.get(uow)
    if pending is None:
        pending = _HOUSE_MOVES[uow] = {}

        async def write() -> None:
            await bulk.move_balances(uow.session, _HOUSE_MOVES.pop(uow, {}))

        uow.last(write)
    for name, amount in moves.items():
        pending[name] = pending.get(name, ZERO) + amount


async def transaction_id_by_key(session: AsyncSession, operation_key: str) -> str | None:
    """Return the id of the transaction posted under an operation key, or None."""
    found: str | None = await session.scalar(
        select(transactions.c.id).where(transactions.c.operation_key == operation_key)
    )
    return found


async def reversed_payments(session: AsyncSession, payment_ids: Sequence[str]) -> list[str]:
    """Return those of the payments whose top-up transaction was reversed, sorted."""
    if not payment_ids:
        return []
    reversal = transactions.alias("reversal")
    rows = await session.scalars(
        select(transactions.c.operation_key)
        .join(reversal, reversal.c.reverses == transactions.c.id)
        .where(
            transactions.c.operation_key.in_([f"payment:{p}" for p in payment_ids]),
            transactions.c.kind == "top_up",
        )
    )
    return sorted(key.removeprefix("payment:") for key in rows.all())


async def load_transaction(session: AsyncSession, transaction_id: str) -> ledger.Transaction | None:
    """Return a posted transaction with its entries, or None."""
    row = (
        await session.execute(select(transactions).where(transactions.c.id == transaction_id))
    ).first()
    if row is None:
        return None
    lines = (
        await session.execute(
            select(entries.c.ledger_account, entries.c.amount).where(
                entries.c.transaction_id == transaction_id
            )
        )
    ).all()
    return ledger.Transaction(
        operation_key=row.operation_key,
        kind=row.kind,
        account_id=row.account_id,
        memo=row.memo,
        entries=tuple(ledger.Entry(a, m) for a, m in lines),
        operator=row.operator,
        reverses=row.reverses,
    )


async def ledger_page(
    session: AsyncSession, account_id: str, *, limit: int, offset: int
) -> Page[LedgerLine]:
    """Return an account's ledger lines, newest first, each with the balance after it."""
    tenant = ledger.tenant_ledger(account_id)
    running = (
        select(
            entries.c.id,
            entries.c.transaction_id,
            entries.c.amount,
            func.sum(entries.c.amount).over(order_by=entries.c.id).label("balance_after"),
        )
        .where(entries.c.ledger_account == tenant)
        .subquery()
    )
    total = await session.scalar(
        select(func.count()).select_from(entries).where(entries.c.ledger_account == tenant)
    )
    rows = (
        await session.execute(
            select(running, transactions)
            .join(transactions, transactions.c.id == running.c.transaction_id)
            .order_by(running.c.id.desc())
            .limit(limit)
            .offset(offset)
        )
    ).all()
    items = [
        LedgerLine(
            transaction_id=row.transaction_id,
            operation_key=row.operation_key,
            kind=row.kind,
            memo=row.memo,
            operator=row.operator,
            reverses=row.reverses,
            amount=row.amount,
            balance_after=row.balance_after,
            created_at=row.created_at,
        )
        for row in rows
    ]
    return Page[LedgerLine](items=items, total=total or 0, limit=limit, offset=offset)


async def ledger_sum(session: AsyncSession, ledger_account: str, *, before: datetime) -> Decimal:
    """Return a ledger account's balance as it stood just before an instant."""
    total: Decimal | None = await session.scalar(
        select(func.sum(entries.c.amount))
        .join(transactions, transactions.c.id == entries.c.transaction_id)
        .where(entries.c.ledger_account == ledger_account, transactions.c.created_at < before)
    )
    return total if total is not None else Decimal("0.00")


async def movements(
    session: AsyncSession, ledger_account: str, *, start: datetime, end: datetime
) -> dict[str, Decimal]:
    """Return what moved a ledger account between two instants, summed by transaction kind."""
    rows = (
        await session.execute(
            select(transactions.c.kind, func.sum(entries.c.amount).label("amount"))
            .join(entries, entries.c.transaction_id == transactions.c.id)
            .where(
                entries.c.ledger_account == ledger_account,
                transactions.c.created_at >= start,
                transactions.c.created_at < end,
            )
            .group_by(transactions.c.kind)
            .order_by(transactions.c.kind)
        )
    ).all()
    return {row.kind: row.amount for row in rows}


async def ledger_check(session: AsyncSession) -> LedgerCheck:
    """Check the whole ledger in ONE statement, so every part sees the same moment.

    Three separate reads could see postings committed between them (on PostgreSQL each
    statement of a READ COMMITTED transaction takes a new snapshot; SQLite reads outside a
    transaction do too) and report a mismatch that never existed.
    """
    amount = func.sum(entries.c.amount)
    parts = union_all(
        select(
            literal("sum", String()).label("part"),
            null().cast(String()).label("name"),
            amount.label("amount"),
        ),
        select(literal("unbalanced", String()), entries.c.transaction_id, amount)
        .group_by(entries.c.transaction_id)
        .having(amount != Decimal(0)),
        select(literal("summed", String()), entries.c.ledger_account, amount).group_by(
            entries.c.ledger_account
        ),
        select(literal("projected", String()), balances.c.ledger_account, balances.c.balance),
    )
    total: Decimal | None = None
    unbalanced: list[str] = []
    summed: dict[str, Decimal] = {}
    projected: dict[str, Decimal] = {}
    for part, name, value in (await session.execute(parts)).all():
        if part == "sum":
            total = value
        elif part == "unbalanced":
            unbalanced.append(name)
        elif part == "summed":
            summed[name] = value
        else:
            projected[name] = value
    mismatched = sorted(
        name
        for name in summed.keys() | projected.keys()
        if summed.get(name, ZERO) != projected.get(name, ZERO)
    )
    return LedgerCheck(
        sum=total if total is not None else Decimal("0.00"),
        unbalanced=unbalanced,
        projection_mismatches=mismatched,
    )
