"""Transactional outbox, idempotent consumers and the unit of work that ties them.

A service changes its tables and records the messages it owes in one transaction; the
relay publishes them afterwards and deletes each row only once the bus has it safe. A
consumer records each handled message id in the same transaction as its effect, so a
message delivered twice changes nothing the second time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Self

from pydantic_core import to_json
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    delete,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from prepaid_common import correlation
from prepaid_common.bus import MessageBus, PublishFailed
from prepaid_common.contracts import Envelope, Message, utcnow
from prepaid_common.db import UtcDateTime
from prepaid_common.metrics import BUS_MESSAGES, OUTBOX_BACKLOG

log = logging.getLogger(__name__)


def outbox_table(metadata: MetaData, service: str) -> Table:
    """Define ``<service>_outbox`` on the service's metadata."""
    return Table(
        f"{service}_outbox",
        metadata,
        Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
        Column("message_id", String(36), nullable=False, unique=True),
        Column("envelope", JSON, nullable=False),
        Column("created_at", UtcDateTime(), nullable=False),
    )


def inbox_table(metadata: MetaData, service: str) -> Table:
    """Define ``<service>_inbox``: ids of messages already handled."""
    return Table(
        f"{service}_inbox",
        metadata,
        Column("message_id", String(36), primary_key=True),
        Column("handled_at", UtcDateTime(), nullable=False),
    )


class UnitOfWork:
    """One transaction; messages emitted inside it are written to the outbox with it."""

    def __init__(self, store: ServiceStore) -> None:
        self._store = store
        self.session: AsyncSession = store.sessionmaker()
        self._emitted = 0
        # Rows for the outbox, written with one statement just before the commit: an
        # INSERT per message costs more than building the message.
        self._outbox_rows: list[dict[str, Any]] = []
        self._last_steps: list[Callable[[], Awaitable[None]]] = []

    async def __aenter__(self) -> Self:
        await self.session.begin()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None:
                for step in self._last_steps:
                    await step()
                if self._outbox_rows:
                    rows, self._outbox_rows = self._outbox_rows, []
                    await self._write_outbox(rows)
                await self.session.commit()
                if self._emitted:
                    self._store.outbox_written.set()
            else:
                await self.session.rollback()
        finally:
            await self.session.close()

    async def _write_outbox(self, rows: list[dict[str, Any]]) -> None:
        outbox = self._store.outbox
        if self.session.get_bind().dialect.name != "postgresql":
            await self.session.execute(insert(outbox), rows)
            return
        # One statement of fixed text whatever the count: prepared once, the rows as arrays
        # (the JSON serialised here, once, instead of per row by the column type).
        await self.session.execute(
            text(
                f"INSERT INTO {outbox.name} (message_id, envelope, created_at) "
                "SELECT * FROM unnest(CAST(:ids AS varchar[]), CAST(:envelopes AS json[]), "
                "CAST(:created AS timestamptz[]))"
            ),
            {
                "ids": [row["message_id"] for row in rows],
                # pydantic-core's encoder: the same JSON values in less than half the time
                # of the json module's (a collector's batch of readings is one envelope).
                "envelopes": [to_json(row["envelope"]).decode() for row in rows],
                "created": [row["created_at"] for row in rows],
            },
        )

    def last(self, step: Callable[[], Awaitable[None]]) -> None:
        """Run ``step`` at the end of the transaction, just before its outbox rows and commit.

        For writes to rows that every transaction of a kind touches (a ledger's house
        accounts): a row lock taken last is held for the commit only, not for the work.
        """
        self._last_steps.append(step)

    async def emit(self, message: Message, *, routing_key: str | None = None) -> Envelope:
        """Record a message to publish once this transaction commits.

        ``routing_key`` replaces the message's own (a reading batch routed to its shard).
        """
        envelope = Envelope.wrap(
            message,
            producer=self._store.service,
            correlation_id=correlation.current_id(),
            routing_key=routing_key,
        )
        self._outbox_rows.append(
            {
                "message_id": envelope.message_id,
                # What model_dump(mode="json") gives, without copying the payload again.
                "envelope": {
                    "message_id": envelope.message_id,
                    "type": envelope.type,
                    "routing_key": envelope.routing_key,
                    "producer": envelope.producer,
                    "payload": envelope.payload,
                    "correlation_id": envelope.correlation_id,
                },
                "created_at": utcnow(),
            }
        )
        self._emitted += 1
        return envelope

    async def first_time_seen(self, envelope: Envelope) -> bool:
        """Record the message as handled; False if it already was (a redelivery)."""
        seen = await self.session.scalar(
            select(self._store.inbox.c.message_id).where(
                self._store.inbox.c.message_id == envelope.message_id
            )
        )
        if seen is not None:
            return False
        await self.session.execute(
            insert(self._store.inbox).values(message_id=envelope.message_id, handled_at=utcnow())
        )
        return True

    async def first_time_seen_many(self, batch: list[Envelope]) -> list[Envelope]:
        """Record a batch as handled; return the messages not seen before, in order."""
        inbox = self._store.inbox
        ids = list(dict.fromkeys(envelope.message_id for envelope in batch))
        if self.session.get_bind().dialect.name == "postgresql":
            # One statement: the ids it inserts are the new ones. A concurrent delivery of
            # the same id makes it wait for that transaction, then skip the id if it won.
            fresh_ids = set(
                (
                    await self.session.execute(
                        text(
                            f"INSERT INTO {inbox.name} (message_id, handled_at) "
                            "SELECT unnest(CAST(:ids AS varchar[])), :now "
                            "ON CONFLICT DO NOTHING RETURNING message_id"
                        ),
                        {"ids": ids, "now": utcnow()},
                    )
                ).scalars()
            )
        else:
            seen = set(
                (
                    await self.session.scalars(
                        select(inbox.c.message_id).where(inbox.c.message_id.in_(ids))
                    )
                ).all()
            )
            fresh_ids = {i for i in ids if i not in seen}
            if fresh_ids:
                now = utcnow()
                await self.session.execute(
                    insert(inbox),
                    [{"message_id": i, "handled_at": now} for i in ids if i in fresh_ids],
                )
        fresh: list[Envelope] = []
        for envelope in batch:
            if envelope.message_id in fresh_ids:
                fresh_ids.discard(envelope.message_id)  # the same id twice in a batch: once
                fresh.append(envelope)
        return fresh


class ServiceStore:
    """A service's database access: sessions, its outbox and inbox tables."""

    def __init__(
        self,
        service: str,
        sessionmaker: async_sessionmaker[AsyncSession],
        outbox: Table,
        inbox: Table,
    ) -> None:
        self.service = service
        self.sessionmaker = sessionmaker
        self.outbox = outbox
        self.inbox = inbox
        self.outbox_written = asyncio.Event()

    def unit_of_work(self) -> UnitOfWork:
        """Open a new unit of work (use with ``async with``)."""
        return UnitOfWork(self)

    def idempotent(
        self, handle: Callable[[UnitOfWork, Envelope], Awaitable[None]]
    ) -> Callable[[Envelope], Awaitable[None]]:
        """Wrap a handler so each message id takes effect once, in the handler's transaction."""

        async def consume(envelope: Envelope) -> None:
            try:
                async with self.unit_of_work() as uow:
                    if not await uow.first_time_seen(envelope):
                        BUS_MESSAGES.labels(self.service, envelope.type, "duplicate").inc()
                        return
                    await handle(uow, envelope)
            except IntegrityError:
                # A concurrent delivery of the same id won the insert: nothing left to do.
                async with self.sessionmaker() as session:
                    done = await session.scalar(
                        select(self.inbox.c.message_id).where(
                            self.inbox.c.message_id == envelope.message_id
                        )
                    )
                if done is None:
                    raise
                BUS_MESSAGES.labels(self.service, envelope.type, "duplicate").inc()
                return
            BUS_MESSAGES.labels(self.service, envelope.type, "handled").inc()

        return consume

    def idempotent_batch(
        self, handle: Callable[[UnitOfWork, list[Envelope]], Awaitable[None]]
    ) -> Callable[[list[Envelope]], Awaitable[None]]:
        """Wrap a batch handler: the messages not yet seen take effect once, in one transaction.

        The handler receives only first-time messages, in their delivery order; their ids
        are recorded in the inbox with one query to check and one statement to insert.
        """

        async def consume(batch: list[Envelope]) -> None:
            try:
                async with self.unit_of_work() as uow:
                    fresh = await uow.first_time_seen_many(batch)
                    if fresh:
                        await handle(uow, fresh)
            except IntegrityError:
                # A concurrent delivery recorded some of these ids first. When all of them
                # are done there is nothing left; otherwise fail, and the bus retries the
                # messages one at a time.
                ids = {envelope.message_id for envelope in batch}
                async with self.sessionmaker() as session:
                    done = set(
                        (
                            await session.scalars(
                                select(self.inbox.c.message_id).where(
                                    self.inbox.c.message_id.in_(ids)
                                )
                            )
                        ).all()
                    )
                if done != ids:
                    raise
                fresh = []
            _count_batch(self.service, batch, fresh)

        return consume


def _count_batch(service: str, batch: list[Envelope], fresh: list[Envelope]) -> None:
    handled: dict[str, int] = {}
    for envelope in fresh:
        handled[envelope.type] = handled.get(envelope.type, 0) + 1
    for type_, count in handled.items():
        BUS_MESSAGES.labels(service, type_, "handled").inc(count)
    if len(batch) > len(fresh):
        BUS_MESSAGES.labels(service, batch[0].type, "duplicate").inc(len(batch) - len(fresh))


class OutboxRelay:
    """Publish outbox rows in order and delete each once the bus has confirmed it."""

    def __init__(
        self, store: ServiceStore, bus: MessageBus, *, batch: int = 500, idle_poll: float = 1.0
    ) -> None:
        self._store = store
        self._bus = bus
        self._batch = batch
        self._idle_poll = idle_poll
        self._task: asyncio.Task[None] | None = None
        self._counted_at = -_COUNT_EVERY

    @property
    def ended(self) -> bool:
        """True once the relay's task stopped on its own (it never should)."""
        return self._task is not None and self._task.done()

    def start(self) -> None:
        """Run the relay in the background."""
        self._task = asyncio.create_task(self._run(), name=f"{self._store.service}-outbox-relay")

    async def stop(self) -> None:
        """Stop after the row in hand."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        written = self._store.outbox_written
        while True:
            # Cleared before reading: a row committed after this sets it again, and one
            # committed before is in what relay_once reads. A short batch therefore means
            # the outbox is empty unless the event says otherwise, with no query to ask.
            written.clear()
            try:
                published = await self.relay_once()
            except Exception:
                log.exception(
                    "outbox relay failed; retrying", extra={"service": self._store.service}
                )
                await asyncio.sleep(self._idle_poll)
                continue
            if published < self._batch:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that
                # lands as the wait ends, and stop() would then hang.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._idle_poll):
                        await written.wait()

    async def relay_once(self) -> int:
        """Publish one batch; return how many rows went out."""
        outbox = self._store.outbox
        async with self._store.sessionmaker() as session:
            if session.get_bind().dialect.name == "postgresql":
                # One transaction reads, and then deletes what the bus confirmed: one
                # connection and one BEGIN per batch instead of two (a collector relays a
                # batch of readings 20 times a second). It holds no lock while publishing:
                # the read takes none. (SQLite's BEGIN IMMEDIATE would hold the write lock.)
                rows = await self._read(session)
                published, failed = await self._publish(rows)
                if published:
                    delete_published = text(_DELETE_PUBLISHED.format(outbox.name))
                    await session.execute(delete_published, {"ids": published})
                await session.commit()
                if failed is not None:
                    raise failed from None
                return len(published)
            rows = await self._read(session)
        published, failed = await self._publish(rows)
        # One delete for everything the bus confirmed, even when a later publish failed:
        # a row is removed only once it is safe, and a commit per row would cap the relay
        # at the database's commit rate.
        if published:
            async with self._store.sessionmaker() as session, session.begin():
                await session.execute(delete(outbox).where(outbox.c.id.in_(published)))
        if failed is not None:
            raise failed from None
        return len(published)

    async def _read(self, session: AsyncSession) -> list[tuple[int, Any]]:
        outbox = self._store.outbox
        rows = (
            await session.execute(
                select(outbox.c.id, outbox.c.envelope).order_by(outbox.c.id).limit(self._batch)
            )
        ).all()
        # A short batch is the whole backlog; a full one may hide more behind it, so the
        # rows are counted then, at most every few seconds (a count scans the table).
        if len(rows) < self._batch:
            OUTBOX_BACKLOG.labels(self._store.service).set(len(rows))
        elif time.monotonic() - self._counted_at >= _COUNT_EVERY:
            total = await session.scalar(select(func.count()).select_from(outbox))
            OUTBOX_BACKLOG.labels(self._store.service).set(total or 0)
            self._counted_at = time.monotonic()
        return [(row_id, raw) for row_id, raw in rows]

    async def _publish(self, rows: list[tuple[int, Any]]) -> tuple[list[int], BaseException | None]:
        """Publish the rows; return the ids the bus confirmed, and why it stopped if it did."""
        if not rows:
            return [], None
        try:
            # The whole batch at once: the broker confirms it in one round trip, and the
            # in-process bus hands batch subscribers (billing) the batch in one call.
            await self._bus.publish_many([Envelope.model_validate(raw) for _id, raw in rows])
        except PublishFailed as failure:
            return [row_id for row_id, _raw in rows[: failure.confirmed]], failure.cause
        return [row_id for row_id, _raw in rows], None


# Fixed text, one array: not a new statement for every count (PostgreSQL).
_DELETE_PUBLISHED = "DELETE FROM {} WHERE id = ANY(CAST(:ids AS bigint[]))"


# How often a relay that keeps finding full batches counts its whole backlog (seconds).
_COUNT_EVERY = 5.0


def envelope_dict(envelope: Envelope) -> dict[str, Any]:
    """Return an envelope as a JSON-ready dict."""
    return envelope.model_dump(mode="json")
