"""The billing service: readings in, money out, supply decisions as messages.

What it is made of (handlers, calendar, routers) is wired by ``billing.bootstrap``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter
from prepaid_common.bus import Handler
from prepaid_common.contracts import ReadingBatchV1, ReadingV1
from prepaid_common.contracts.sharding import shard_bindings
from prepaid_common.service import BatchSubscriptionSpec, Service

from billing.calendar import BillingCalendar
from billing.handlers import BillingHandlers, readings_carried
from billing.operations import BillingOperations
from billing.settings import BillingSettings
from billing.tables import plumbing


@dataclass(frozen=True)
class BillingParts:
    """What bootstrap builds on the service's store."""

    settings: BillingSettings
    handlers: BillingHandlers
    operations: BillingOperations
    calendar: BillingCalendar
    routers: Sequence[APIRouter]


class BillingService(Service):
    """Billing's subscriptions, internal API and calendar loop on its store.

    Constructed on an engine and a bus (enough to migrate); ``billing.bootstrap.build``
    then attaches the parts it wires on the service's store.
    """

    name = "billing"
    migrations_dir = Path(__file__).parent / "migrations"
    tables = plumbing

    _parts: BillingParts | None = None

    def attach(self, parts: BillingParts) -> None:
        """Take the parts bootstrap wired on this service's store."""
        self._parts = parts

    @property
    def parts(self) -> BillingParts:
        """The wired parts; a service built without bootstrap has none."""
        if self._parts is None:
            raise RuntimeError("billing is wired by billing.bootstrap.build")
        return self._parts

    @property
    def handlers(self) -> BillingHandlers:
        """The bus message handlers."""
        return self.parts.handlers

    @property
    def operations(self) -> BillingOperations:
        """The use cases the API offers."""
        return self.parts.operations

    @property
    def calendar(self) -> BillingCalendar:
        """What billing does as time passes."""
        return self.parts.calendar

    def subscriptions(self) -> Sequence[tuple[str, Sequence[str], Handler]]:
        handlers = self.handlers
        return (
            (
                "payments",
                ["payment.succeeded.v1.#"],
                self.store.idempotent(handlers.handle_payment),
            ),
            ("outcomes", ["command.outcome.v1.#"], self.store.idempotent(handlers.handle_outcome)),
            # Refused commands (collector), relays that disagree (control), clocks: listed.
            ("anomalies", ["anomaly.v1.#"], self.store.idempotent(handlers.handle_anomaly)),
        )

    def batch_subscriptions(self) -> Sequence[BatchSubscriptionSpec]:
        settings = self.parts.settings
        handler = self.store.idempotent_batch(self.handlers.handle_readings)
        owned = settings.reading_shards_owned()
        # The prefetch bounds the messages in hand across the replica's reading queues.
        prefetch = -(-settings.billing_reading_prefetch // max(len(owned), 1))

        def readings(queue: str, bindings: list[str], *, sharded: bool) -> BatchSubscriptionSpec:
            return BatchSubscriptionSpec(
                queue,
                bindings,
                handler,
                max_batch=settings.billing_reading_batch_max,
                max_wait=settings.billing_reading_batch_wait_seconds,
                weigh=readings_carried,
                prefetch=prefetch,
                # A shard is taken by one replica at a time, so its meters' order holds
                # while replicas come and go (docs/architecture.md, Billing replicas).
                single_active_consumer=sharded,
            )

        if settings.reading_shards == 1:
            # reading.v1 one reading a message, reading.batch.v1 (collectors) many; the one
            # queue as before sharding (taken by replica 0 only, if several run).
            bindings = ["reading.v1.#", "reading.batch.v1.#"]
            return (readings("readings", bindings, sharded=False),) if owned else ()
        return tuple(
            readings(
                f"readings-shard-{shard}",
                shard_bindings((ReadingV1.TYPE, ReadingBatchV1.TYPE), shard),
                sharded=True,
            )
            for shard in owned
        )

    def routers(self) -> Sequence[APIRouter]:
        return self.parts.routers

    async def background(self) -> Sequence[asyncio.Task[None]]:
        return [asyncio.create_task(self.calendar.run_forever(), name="billing-sweep")]
