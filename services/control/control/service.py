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
from control.handlers import CommandHandlers
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
        idempotent = self.store.idempotent
        return (
            ("credits", ["credit.requested.v1.#"], idempotent(self.handlers.on_credit_requested)),
            ("decisions", ["supply.decided.v1.#"], idempotent(self.handlers.on_supply_decided)),
            # A meter back online: its disagreement, if any, is re-issued without waiting.
            ("status", ["meter.status.v1.#"], idempotent(self.handlers.on_meter_status)),
            ("results", ["command.result.v1.#"], idempotent(self.handlers.on_result)),
            # The relay each meter reports: kept beside the decided supply (relay truth).
            (
                "relays",
                ["reading.v1.#", "reading.batch.v1.#"],
                idempotent(self.handlers.on_readings),
            ),
        )

    def batch_subscriptions(self) -> Sequence[BatchSubscriptionSpec]:
        # Billing's trips and closes in bursts (a mass event, a group command): one commit
        # for what has arrived, not one each. No wait for more: a lone request goes at once.
        return (
            BatchSubscriptionSpec(
                "requests",
                ["relay.requested.v1.#"],
                self.store.idempotent_batch(self.handlers.on_relay_requests),
                max_batch=200,
                max_wait=0,
            ),
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
