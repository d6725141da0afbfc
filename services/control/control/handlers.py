"""Control's units of work: issue a command, follow its results, expire it.

Billing's requests and the collectors' results arrive on the bus; an operator's command
comes through the API (``operations``). Each is one unit of work: the log's change and
the messages it sends commit together.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal

from prepaid_common.contracts import (
    AnomalyV1,
    CommandAction,
    CommandOutcomeV1,
    CommandRequestV1,
    CommandResultV1,
    CreditRequestedV1,
    Envelope,
    MeterStatusV1,
    ReadingBatchV1,
    ReadingV1,
    RelayRequestedV1,
    SupplyDecidedV1,
    open_envelope,
    utcnow,
)
from prepaid_common.contracts.api.control import AlarmThresholds
from prepaid_common.outbox import UnitOfWork

from control import store
from control.domain import (
    COMMAND_LIFETIME,
    CommandFinalStatus,
    CommandSealer,
    CommandToSeal,
    Reconciliation,
    decide_on_result,
    reconcile,
    relay_for,
)
from control.metrics import COMMAND_SECONDS, COMMANDS, RELAY_ALARMS, RELAY_REISSUES
from control.store import StoredCommand

log = logging.getLogger(__name__)

MeterHandler = Callable[[UnitOfWork, Envelope], Awaitable[None]]


def in_meter_order(
    handle: MeterHandler,
) -> Callable[[UnitOfWork, list[Envelope]], Awaitable[None]]:
    """Handle a burst of messages in one transaction, in meter order.

    Each meter's own messages keep their delivery order (a stable sort); across meters the
    rows are locked in meter id order, as relay reports are kept (``store.report_relays``),
    so two transactions locking many meters' rows cannot deadlock.
    """

    async def handle_all(uow: UnitOfWork, envelopes: list[Envelope]) -> None:
        for envelope in sorted(envelopes, key=lambda e: str(e.payload.get("meter_id", ""))):
            await handle(uow, envelope)

    return handle_all


NO_RESULT = "no result before expiry"


class CommandHandlers:
    """The command log's units of work, sealing what they send with one sealer."""

    def __init__(self, sealer: CommandSealer, reconciliation: Reconciliation | None = None) -> None:
        self.sealer = sealer
        self.reconciliation = reconciliation or Reconciliation()

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
        batch: str | None = None,
        alarm_thresholds: AlarmThresholds | None = None,
        power_limit_kw: Decimal | None = None,
    ) -> str:
        """Log a command and send it to the collector, in the caller's transaction."""
        now = utcnow()
        command = StoredCommand(
            id=str(uuid.uuid4()),
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
            batch=batch,
            alarm_thresholds=alarm_thresholds,
            power_limit_kw=power_limit_kw,
        )
        await store.insert_command(uow.session, command)
        await self._send(uow, command, issued_at=now)
        return command.id

    async def on_relay_requested(self, uow: UnitOfWork, envelope: Envelope) -> None:
        """Turn billing's trip/close request into a command."""
        request = open_envelope(envelope, RelayRequestedV1)
        if await store.command_for_request(uow.session, request.request_id) is not None:
            return
        # Billing's decision is kept: the meter is held to it until its relay agrees.
        await store.set_supply(
            uow.session,
            request.meter_id,
            supply="off" if request.action == "trip" else "on",
            reason=request.reason,
            at=request.at,
        )
        await self.issue(
            uow,
            meter_id=request.meter_id,
            action=request.action,
            origin="billing",
            reason=request.reason,
            request_id=request.request_id,
            batch=request.batch,
        )

    async def on_supply_decided(self, uow: UnitOfWork, envelope: Envelope) -> None:
        """Keep billing's standing decision (a meter bound or swapped in) to hold its relay to."""
        decided = open_envelope(envelope, SupplyDecidedV1)
        await store.set_supply(
            uow.session,
            decided.meter_id,
            supply=decided.supply,
            reason=decided.reason,
            at=decided.at,
        )

    async def on_credit_requested(self, uow: UnitOfWork, envelope: Envelope) -> None:
        """Turn billing's purchase for a local-prepaid meter into a command."""
        request = open_envelope(envelope, CreditRequestedV1)
        if await store.command_for_request(uow.session, request.request_id) is not None:
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

    async def on_result(self, uow: UnitOfWork, envelope: Envelope) -> None:
        """Record a collector's result; retry a failure while attempts and time remain."""
        result = open_envelope(envelope, CommandResultV1)
        command = await store.command_by_id(uow.session, result.command_id)
        if command is None:
            log.warning("result for unknown command", extra={"command_id": result.command_id})
            return
        now = utcnow()
        decision = decide_on_result(
            status=command.status,
            succeeded=result.succeeded,
            attempts=command.attempts,
            expires_at=command.expires_at,
            now=now,
            retryable=result.retryable,
        )
        if result.relay is not None:
            await store.report_relays(uow.session, [(result.meter_id, result.relay, result.at)])
        if decision is None:
            return
        await store.record_status(
            uow.session,
            command.id,
            status=decision.status,
            error=result.error[:400],
            attempts=command.attempts + (1 if decision.retry else 0),
            at=now,
        )
        if decision.final is None:
            await self._send(uow, command, issued_at=now)
            return
        await self._finish(uow, command, decision.final, result.error, retryable=result.retryable)

    async def expire_overdue(self, uow: UnitOfWork) -> int:
        """Mark commands whose time ran out without a result as expired; return how many."""
        now = utcnow()
        overdue = await store.open_commands_expired(uow.session, now)
        for command in overdue:
            await store.mark_expired(uow.session, command.id, error=NO_RESULT, at=now)
            await self._finish(uow, command, "expired", NO_RESULT)
        return len(overdue)

    async def on_readings(self, uow: UnitOfWork, envelope: Envelope) -> None:
        """Keep the relay state each reading reports (meters without one say nothing)."""
        if envelope.type == ReadingBatchV1.TYPE:
            readings = open_envelope(envelope, ReadingBatchV1).readings
        else:
            readings = [open_envelope(envelope, ReadingV1)]
        await store.report_relays(
            uow.session,
            [(r.meter_id, r.relay, r.read_at) for r in readings if r.relay is not None],
        )

    async def on_meter_status(self, uow: UnitOfWork, envelope: Envelope) -> None:
        """A meter back online: a disagreement waiting out its back-off is re-issued now."""
        status = open_envelope(envelope, MeterStatusV1)
        if status.online:
            await store.due_now(uow.session, status.meter_id, at=status.at)

    async def reconcile(self, uow: UnitOfWork, *, limit: int = 500) -> int:
        """Issue again the commands of meters whose relay still disagrees; return how many."""
        now = utcnow()
        truths = await store.to_reconcile(uow.session, limit=limit)
        busy = await store.meters_with_open_commands(uow.session, [t.meter_id for t in truths])
        issued = 0
        for truth in truths:
            step = reconcile(
                truth, now=now, command_open=truth.meter_id in busy, policy=self.reconciliation
            )
            alarmed = truth.alarmed and step.differs_since is not None
            if step.alarm:
                alarmed = True
                RELAY_ALARMS.inc()
                await uow.emit(
                    AnomalyV1(
                        meter_id=truth.meter_id,
                        kind="relay_disagrees",
                        detail=f"relay {truth.relay} while supply is {truth.supply} "
                        f"since {step.differs_since}; {truth.reissues} re-issues so far",
                        at=now,
                    )
                )
            await store.record_reconciliation(
                uow.session,
                truth.meter_id,
                differs_since=step.differs_since,
                next_attempt_at=step.next_attempt_at,
                reissues=step.reissues,
                alarmed=alarmed,
            )
            if step.reissue is not None and truth.supply is not None:
                RELAY_REISSUES.labels(step.reissue).inc()
                issued += 1
                await self.issue(
                    uow,
                    meter_id=truth.meter_id,
                    action=step.reissue,
                    origin="reconcile",
                    reason=f"relay reported {truth.relay}, supply {truth.supply} wants "
                    f"{relay_for(truth.supply)} (re-issue {step.reissues})",
                )
        return issued

    async def _send(self, uow: UnitOfWork, command: StoredCommand, *, issued_at: datetime) -> None:
        counter, algorithm = await store.next_counter(uow.session, command.meter_id)
        sealed = CommandToSeal(
            command.id,
            command.meter_id,
            command.action,
            issued_at,
            command.expires_at,
            command.amount,
            command.purchase_count,
            counter,
            algorithm,
            command.alarm_thresholds,
            command.power_limit_kw,
        )
        await uow.emit(
            CommandRequestV1(
                command_id=sealed.command_id,
                meter_id=sealed.meter_id,
                action=sealed.action,
                issued_at=sealed.issued_at,
                expires_at=sealed.expires_at,
                envelope=self.sealer.seal(sealed),
                amount=sealed.amount,
                purchase_count=sealed.purchase_count,
            )
        )

    async def _finish(
        self,
        uow: UnitOfWork,
        command: StoredCommand,
        status: CommandFinalStatus,
        error: str,
        *,
        retryable: bool = True,
    ) -> None:
        COMMANDS.labels(command.action, status).inc()
        COMMAND_SECONDS.labels(command.action).observe(
            max(0.0, (utcnow() - command.created_at).total_seconds())
        )
        if status != "succeeded" and retryable and command.action in ("trip", "close"):
            await store.mark_unconfirmed(uow.session, command.meter_id)
        await uow.emit(
            CommandOutcomeV1(
                command_id=command.id,
                meter_id=command.meter_id,
                action=command.action,
                status=status,
                error=error,
                retryable=retryable,
                request_id=command.request_id,
                purchase_count=command.purchase_count,
                at=utcnow(),
            )
        )
