"""Pure rules of commands (relay switches, hold-power, purchases, time sets, alarm levels,
power limits):
their life cycle, how they are sealed, and when a meter whose relay disagrees with its
decided supply is asked again."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Literal, Protocol

from prepaid_common.contracts import CommandAction, RelayAction, RelayState
from prepaid_common.contracts.api.control import AlarmThresholds
from prepaid_common.sealing import Algorithm, Command, KeyRing, seal_text

CommandStatus = Literal["pending", "sent", "succeeded", "failed", "expired"]
CommandFinalStatus = Literal["succeeded", "failed", "expired"]
FINAL_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "expired"})

COMMAND_LIFETIME = timedelta(minutes=2)
MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class CommandToSeal:
    command_id: str
    meter_id: str
    action: CommandAction
    issued_at: datetime
    expires_at: datetime
    # A purchase (action "credit"): the seal covers both, so neither can be altered.
    amount: Decimal | None = None
    purchase_count: int | None = None
    # The meter's next command counter (anti-replay) and its envelope algorithm.
    counter: int = 0
    algorithm: Algorithm = "3des"
    # The levels an ``alarm_thresholds`` command sets.
    alarm_thresholds: AlarmThresholds | None = None
    # The limit (kW) a ``power_limit`` command sets.
    power_limit_kw: Decimal | None = None


def command_payload(command: CommandToSeal) -> dict[str, object]:
    """Return what the envelope carries besides its header, for every command kind.

    A time set carries the time it is sealed at (UTC): each attempt is sealed afresh, so a
    retry sets the time of its own sealing, not of the first attempt.
    """
    payload: dict[str, object] = {"command_id": command.command_id}
    if command.amount is not None:
        payload["amount"] = str(command.amount)
    if command.purchase_count is not None:
        payload["purchase_count"] = command.purchase_count
    if command.action == "time_set":
        payload["time"] = command.issued_at.isoformat()
    if command.alarm_thresholds is not None:
        payload["first"] = str(command.alarm_thresholds.first)
        payload["second"] = str(command.alarm_thresholds.second)
    if command.power_limit_kw is not None:
        payload["kw"] = str(command.power_limit_kw)
    return payload


class CommandSealer(Protocol):
    """Turns a command into the envelope the point of execution verifies.

    The encrypted, authenticated 3DES envelope replaces the plain one in its own issue;
    the collector's ``CommandOpener`` is the matching other half.
    """

    def seal(self, command: CommandToSeal) -> str:
        """Return the envelope text for a command."""
        ...


class PlainCommandSealer:
    """Unprotected JSON envelope: development only, until the 3DES sealer lands."""

    def seal(self, command: CommandToSeal) -> str:
        fields: dict[str, object] = {
            "command_id": command.command_id,
            "meter_id": command.meter_id,
            "action": command.action,
            "expires_at": command.expires_at.isoformat(),
        }
        return json.dumps(fields | command_payload(command))


class EnvelopeSealer:
    """The encrypted, MACed envelope (``prepaid_common.sealing``) with per-meter keys."""

    def __init__(self, ring: KeyRing) -> None:
        self.ring = ring

    def seal(self, command: CommandToSeal) -> str:
        return seal_text(
            Command(
                meter_id=command.meter_id,
                kind=command.action,
                counter=command.counter,
                issued_at=command.issued_at,
                expires_at=command.expires_at,
                payload=command_payload(command),
                algorithm=command.algorithm,
            ),
            self.ring,
        )


@dataclass(frozen=True)
class ResultDecision:
    """What a collector's result does to a command: a final status, or a retry (None)."""

    final: CommandFinalStatus | None

    @property
    def retry(self) -> bool:
        return self.final is None

    @property
    def status(self) -> CommandStatus:
        return "sent" if self.final is None else self.final


def decide_on_result(
    *,
    status: str,
    succeeded: bool,
    attempts: int,
    expires_at: datetime,
    now: datetime,
    retryable: bool = True,
) -> ResultDecision | None:
    """Return the new status for a result, or None if the command is already final."""
    if status in FINAL_STATUSES:
        return None
    if succeeded:
        return ResultDecision("succeeded")
    if now >= expires_at:
        return ResultDecision("expired")
    if retryable and attempts < MAX_ATTEMPTS:
        return ResultDecision(None)
    return ResultDecision("failed")


# --- relay truth ----------------------------------------------------------------------
# Billing decides each meter's supply; the meter reports its relay. While they differ the
# command is issued again, with back-off, for as long as they differ: never given up.

Supply = Literal["on", "off"]


def relay_for(supply: Supply) -> RelayState:
    """Return the relay state a decided supply calls for."""
    return "closed" if supply == "on" else "open"


def action_for(supply: Supply) -> RelayAction:
    """Return the relay action that brings a meter to its decided supply."""
    return "close" if supply == "on" else "trip"


@dataclass(frozen=True)
class Reconciliation:
    """How stubbornly a disagreeing relay is asked again, and when operators hear of it."""

    first_retry: timedelta = timedelta(seconds=10)
    max_backoff: timedelta = timedelta(minutes=5)
    alarm_after: timedelta = timedelta(minutes=10)
    # An operator's own trip or close is left alone this long before the decision returns.
    operator_grace: timedelta = timedelta(minutes=30)

    def backoff(self, reissues: int) -> timedelta:
        """Return the wait before the next re-issue, doubling up to the ceiling."""
        wait: timedelta = self.first_retry * (2 ** min(reissues, 20))
        return min(wait, self.max_backoff)


@dataclass(frozen=True)
class RelayTruth:
    """One meter: the decided supply, the reported relay, and the reconciliation's state."""

    meter_id: str
    supply: Supply | None
    relay: RelayState | None
    differs_since: datetime | None
    next_attempt_at: datetime | None
    reissues: int
    alarmed: bool
    override_until: datetime | None
    # No relay reported, and the last command to switch it failed: it may well disagree.
    unconfirmed: bool = False

    @property
    def differs(self) -> bool:
        """Whether the relay disagrees with the decided supply, or may after a failure."""
        if self.supply is None:
            return False
        if self.relay is None:
            return self.unconfirmed
        return self.relay != relay_for(self.supply)


@dataclass(frozen=True)
class ReconcileStep:
    """What the sweep does to one meter now."""

    differs_since: datetime | None
    reissue: RelayAction | None = None
    next_attempt_at: datetime | None = None
    reissues: int = 0
    alarm: bool = False


def reconcile(
    truth: RelayTruth, *, now: datetime, command_open: bool, policy: Reconciliation
) -> ReconcileStep:
    """Decide whether to issue the meter's command again and whether to raise the alarm.

    A command still in flight is left to finish; an operator's override is left alone until
    it lapses; otherwise the first re-issue waits ``first_retry`` after the disagreement was
    seen and each later one doubles the wait, without end.
    """
    if not truth.differs or truth.supply is None:
        return ReconcileStep(differs_since=None)
    since = truth.differs_since or now
    alarm = not truth.alarmed and now - since >= policy.alarm_after
    waiting = command_open or (truth.override_until is not None and now < truth.override_until)
    due = truth.next_attempt_at or since + policy.first_retry
    if waiting or now < due:
        return ReconcileStep(
            differs_since=since, next_attempt_at=due, reissues=truth.reissues, alarm=alarm
        )
    return ReconcileStep(
        differs_since=since,
        reissue=action_for(truth.supply),
        next_attempt_at=now + policy.backoff(truth.reissues + 1),
        reissues=truth.reissues + 1,
        alarm=alarm,
    )


# --- group commands ---------------------------------------------------------------------
ProgressState = Literal["queued", "sent", "confirmed", "failed"]


def progress_state(
    *, status: str, supply: Supply | None, relay: RelayState | None
) -> ProgressState:
    """Where one meter of a group command stands.

    Confirmed once its command succeeded or its reported relay agrees with its decision (a
    failed command the reconciliation later made good counts as confirmed); failed while a
    final failure still disagrees (the reconciliation keeps at it).
    """
    if status == "pending":
        return "queued"
    if status == "sent":
        return "sent"
    if status == "succeeded":
        return "confirmed"
    if supply is not None and relay is not None and relay == relay_for(supply):
        return "confirmed"
    return "failed"
