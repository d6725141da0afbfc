"""The control service: one command log, sealed commands out, outcomes back.

Commands switch a relay (trip, close) or push a purchase to a local-prepaid meter (credit);
both are sealed, retried, expired and reported the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path

from fastapi import APIRouter
from prepaid_common.bus import Handler, MessageBus
from prepaid_common.service import BatchSubscriptionSpec, Service
from sqlalchemy.ext.asyncio import AsyncEngine

from control import api, operations
from control.domain import PlainCommandSealer
from control.handlers import CommandHandlers, MeterHandler, in_meter_order
from control.tables import metadata, plumbing

log = logging.getLogger(__name__)


class ControlService(Service):
    name = "control"
    migrations_dir = Path(__file__).parent / "migrations"
    tables = plumbing
    metadata = metadata

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        bus: MessageBus,
        handlers: CommandHandlers | None = None,
        sweep_interval: float = 5.0,
    ) -> None:
        super().__init__(engine=engine, bus=bus)
        self.handlers = handlers or CommandHandlers(PlainCommandSealer())
        self.sweep_interval = sweep_interval

    def subscriptions(self) -> Sequence[tuple[str, Sequence[str], Handler]]:
        return (
            # The relay each meter reports: kept beside the decided supply (relay truth).
            # One message is already a collector's batch of readings.
            (
                "relays",
                ["reading.v1.#", "reading.batch.v1.#"],
                self.store.idempotent(self.handlers.on_readings),
            ),
        )

    def batch_subscriptions(self) -> Sequence[BatchSubscriptionSpec]:
        # Each of these comes in bursts: a mass event's trips and their results, a group
        # command, a site's meters bound at once (100,000 supply decisions took an hour one
        # commit at a time). What has arrived is taken in one transaction, in meter order
        # (handlers.in_meter_order); no wait for more, so a lone message goes at once.
        handlers = self.handlers

        def burst(queue: str, binding: str, handle: MeterHandler) -> BatchSubscriptionSpec:
            return BatchSubscriptionSpec(
                queue,
                [binding],
                self.store.idempotent_batch(in_meter_order(handle)),
                max_batch=200,
                max_wait=0,
            )

        return (
            burst("requests", "relay.requested.v1.#", handlers.on_relay_requested),
            burst("credits", "credit.requested.v1.#", handlers.on_credit_requested),
            burst("decisions", "supply.decided.v1.#", handlers.on_supply_decided),
            # A meter back online: its disagreement, if any, is re-issued without waiting.
            burst("status", "meter.status.v1.#", handlers.on_meter_status),
            burst("results", "command.result.v1.#", handlers.on_result),
        )

    def routers(self) -> Sequence[APIRouter]:
        return [api.internal_router(self.store, self.handlers)]

    async def background(self) -> Sequence[asyncio.Task[None]]:
        return [asyncio.create_task(self._sweep_forever(), name="control-expiry-sweep")]

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval)
            try:
                await operations.sweep_expired(self.store, self.handlers)
                await operations.reconcile_relays(self.store, self.handlers)
            except Exception:
                log.exception("expiry and relay sweep failed")
