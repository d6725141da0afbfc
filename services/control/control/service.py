"""The control service: one command log, sealed commands out, outcomes back.

Commands switch a relay (trip, close) or push a purchase to a local-prepaid meter (credit);
both are sealed, retried, expired and reported the same way.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query
from prepaid_common.bus import Handler, MessageBus
from prepaid_common.contracts import (
    CommandAction,
    CommandOutcomeV1,
    CommandRequestV1,
    CommandResultV1,
    CreditRequestedV1,
    Envelope,
    RelayRequestedV1,
    open_envelope,
    utcnow,
)
from prepaid_common.contracts.api.control import CommandView, OperatorCommand
from prepaid_common.errors import NotFound
from prepaid_common.outbox import UnitOfWork
from prepaid_common.service import Service
from prometheus_client import Counter
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from control.domain import (
    COMMAND_LIFETIME,
    CommandFinalStatus,
    CommandSealer,
    CommandToSeal,
    PlainCommandSealer,
    decide_on_result,
)
from control.tables import commands, plumbing

log = logging.getLogger(__name__)

COMMANDS = Counter(
    "prepaid_control_commands_total",
    "Commands (relay and purchases) by action and final status",
    ["action", "status"],
)


class ControlService(Service):
    name = "control"
    migrations_dir = Path(__file__).parent / "migrations"
    tables = plumbing

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        bus: MessageBus,
        sealer: CommandSealer | None = None,
        sweep_interval: float = 5.0,
    ) -> None:
        super().__init__(engine=engine, bus=bus)
        self.sealer = sealer or PlainCommandSealer()
        self.sweep_interval = sweep_interval

    def subscriptions(self) -> Sequence[tuple[str, Sequence[str], Handler]]:
        return (
            ("requests", ["relay.requested.v1.#"], self.store.idempotent(self.handle_request)),
            (
                "credits",
                ["credit.requested.v1.#"],
                self.store.idempotent(self.handle_credit_request),
            ),
            ("results", ["command.result.v1.#"], self.store.idempotent(self.handle_result)),
        )

    async def background(self) -> Sequence[asyncio.Task[None]]:
        return [asyncio.create_task(self._sweep_forever(), name="control-expiry-sweep")]

    # --- issuing -----------------------------------------------------------------------
    async def issue(
        self,
        uow: UnitOfWork,
        *,
        meter_id: str,
        action: CommandAction,
        origin: str,
        reason: str,
        request_id: str | None = None,
        amount: Decimal | None = None,
        purchase_count: int | None = None,
    ) -> str:
        """Log a command and send it to the collector, in the caller's transaction."""
        now = utcnow()
        command_id = str(uuid.uuid4())
        await uow.session.execute(
            insert(commands).values(
                id=command_id,
                meter_id=meter_id,
                action=action,
                amount=amount,
                purchase_count=purchase_count,
                origin=origin,
                reason=reason,
                request_id=request_id,
                status="sent",
                attempts=1,
                error="",
                created_at=now,
                expires_at=now + COMMAND_LIFETIME,
                updated_at=now,
            )
        )
        await self._send(
            uow,
            CommandToSeal(
                command_id, meter_id, action, now, now + COMMAND_LIFETIME, amount, purchase_count
            ),
        )
        return command_id

    async def _send(self, uow: UnitOfWork, command: CommandToSeal) -> None:
        await uow.emit(
            CommandRequestV1(
                command_id=command.command_id,
                meter_id=command.meter_id,
                action=command.action,
                issued_at=command.issued_at,
                expires_at=command.expires_at,
                envelope=self.sealer.seal(command),
                amount=command.amount,
                purchase_count=command.purchase_count,
            )
        )

    async def handle_request(self, uow: UnitOfWork, envelope: Envelope) -> None:
        """Turn billing's trip/close request into a command."""
        request = open_envelope(envelope, RelayRequestedV1)
        known = await uow.session.scalar(
            select(commands.c.id).where(commands.c.request_id == request.request_id)
        )
        if known is not None:
            return
        await self.issue(
            uow,
            meter_id=request.meter_id,
            action=request.action,
            origin="billing",
            reason=request.reason,
            request_id=request.request_id,
        )

    async def handle_credit_request(self, uow: UnitOfWork, envelope: Envelope) -> None:
        """Turn billing's purchase for a local-prepaid meter into a command."""
        request = open_envelope(envelope, CreditRequestedV1)
        known = await uow.session.scalar(
            select(commands.c.id).where(commands.c.request_id == request.request_id)
        )
        if known is not None:
            return
        await self.issue(
            uow,
            meter_id=request.meter_id,
            action="credit",
            origin="billing",
            reason=f"purchase {request.purchase_count} ({request.operation_key})",
            request_id=request.request_id,
            amount=request.amount,
            purchase_count=request.purchase_count,
        )

    async def handle_result(self, uow: UnitOfWork, envelope: Envelope) -> None:
        """Record a collector's result; retry a failure while attempts and time remain."""
        result = open_envelope(envelope, CommandResultV1)
        row = (
            await uow.session.execute(select(commands).where(commands.c.id == result.command_id))
        ).first()
        if row is None:
            log.warning("result for unknown command", extra={"command_id": result.command_id})
            return
        now = utcnow()
        decision = decide_on_result(
            status=row.status,
            succeeded=result.succeeded,
            attempts=row.attempts,
            expires_at=row.expires_at,
            now=now,
            retryable=result.retryable,
        )
        if decision is None:
            return
        await uow.session.execute(
            update(commands)
            .where(commands.c.id == row.id)
            .values(
                status=decision.status,
                error=result.error[:400],
                attempts=row.attempts + (1 if decision.retry else 0),
                updated_at=now,
            )
        )
        if decision.final is None:
            await self._send(
                uow,
                CommandToSeal(
                    row.id,
                    row.meter_id,
                    row.action,
                    now,
                    row.expires_at,
                    row.amount,
                    row.purchase_count,
                ),
            )
            return
        await self._finish(uow, row, decision.final, result.error, retryable=result.retryable)

    async def _finish(
        self,
        uow: UnitOfWork,
        row: Any,
        status: CommandFinalStatus,
        error: str,
        *,
        retryable: bool = True,
    ) -> None:
        COMMANDS.labels(row.action, status).inc()
        await uow.emit(
            CommandOutcomeV1(
                command_id=row.id,
                meter_id=row.meter_id,
                action=row.action,
                status=status,
                error=error,
                retryable=retryable,
                request_id=row.request_id,
                purchase_count=row.purchase_count,
                at=utcnow(),
            )
        )

    async def sweep_expired(self) -> int:
        """Mark commands whose time ran out without a result as expired."""
        now = utcnow()
        async with self.store.unit_of_work() as uow:
            rows = (
                await uow.session.execute(
                    select(commands).where(
                        commands.c.status.in_(("pending", "sent")), commands.c.expires_at <= now
                    )
                )
            ).all()
            for row in rows:
                await uow.session.execute(
                    update(commands)
                    .where(commands.c.id == row.id)
                    .values(status="expired", error="no result before expiry", updated_at=now)
                )
                await self._finish(uow, row, "expired", "no result before expiry")
        return len(rows)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval)
            try:
                await self.sweep_expired()
            except Exception:
                log.exception("expiry sweep failed")

    # --- internal API ------------------------------------------------------------------
    async def get_command(self, command_id: str) -> CommandView:
        async with self.store.sessionmaker() as session:
            row = (
                await session.execute(select(commands).where(commands.c.id == command_id))
            ).first()
        if row is None:
            raise NotFound(f"command {command_id} does not exist")
        return CommandView.model_validate(dict(row._mapping))

    def routers(self) -> Sequence[APIRouter]:
        router = APIRouter(prefix="/internal")

        @router.post("/commands", status_code=202)
        async def operator_command(body: OperatorCommand) -> CommandView:
            async with self.store.unit_of_work() as uow:
                command_id = await self.issue(
                    uow,
                    meter_id=body.meter_id,
                    action=body.action,
                    origin=f"operator:{body.operator}",
                    reason=body.reason,
                )
            return await self.get_command(command_id)

        @router.get("/commands/{command_id}")
        async def get_command(command_id: str) -> CommandView:
            return await self.get_command(command_id)

        @router.get("/commands")
        async def list_commands(
            meter_id: str | None = None,
            limit: int = Query(50, ge=1, le=500),
            offset: int = Query(0, ge=0),
        ) -> dict[str, Any]:
            query = select(commands).order_by(commands.c.created_at.desc(), commands.c.id)
            if meter_id is not None:
                query = query.where(commands.c.meter_id == meter_id)
            async with self.store.sessionmaker() as session:
                rows = (await session.execute(query.limit(limit).offset(offset))).all()
            return {
                "items": [CommandView.model_validate(dict(r._mapping)) for r in rows],
                "limit": limit,
                "offset": offset,
            }

        return [router]
