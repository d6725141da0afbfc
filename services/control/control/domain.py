"""Pure rules of commands (relay switches and purchases): their life cycle and how they
are sealed."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Literal, Protocol

from prepaid_common.contracts import CommandAction

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
        if command.amount is not None:
            fields["amount"] = str(command.amount)
        if command.purchase_count is not None:
            fields["purchase_count"] = command.purchase_count
        return json.dumps(fields)


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
