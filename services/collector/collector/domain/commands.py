"""Commands: opening the sealed envelope, what a meter model can do, what the meter did."""

from __future__ import annotations

import json
from dataclasses import astuple, dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from prepaid_common.contracts import CommandAction, RelayAction, RelayState
from prepaid_common.sealing import EnvelopeRefused, KeyRing, open_text
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from collector.domain.profiles import Dlt645Profile, MeterProfile, Profile

EXPIRED = "expired"


class RefusedCommand(Exception):
    """An envelope that must not be executed (forged, altered, replayed, expired...).

    ``kind`` names the refusal for metrics and security events (``forged``, ``replayed``,
    ``expired``, ``wrong_meter``, ``malformed``, ``unknown_key``, ``unknown_meter``, or
    ``refused`` for a command the meter model cannot carry out).
    """

    def __init__(self, reason: str, kind: str = "refused") -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind

    @property
    def security(self) -> bool:
        """Whether the refusal is a security event (not a model's missing capability)."""
        return self.kind != "refused"


@dataclass(frozen=True)
class Purchase:
    """Money for a local-prepaid meter's credit, with the purchase count it must carry."""

    amount: Decimal
    count: int


@dataclass(frozen=True)
class OpenedCommand:
    """What a verified envelope authorises: a relay action, or a purchase (``credit``)."""

    command_id: str
    action: CommandAction
    purchase: Purchase | None = None
    # The sealed envelope's counter (None for the plain one).
    counter: int | None = None


class CommandOpener(Protocol):
    """Verify a sealed command for one meter; raise RefusedCommand when it must not run."""

    def open(
        self, envelope: str, *, meter_id: str, now: datetime, last_counter: int = 0
    ) -> OpenedCommand:
        """Return the command the envelope carries, or raise RefusedCommand.

        ``last_counter`` is the last counter kept for the meter (across restarts).
        """
        ...


class _PlainEnvelope(BaseModel):
    model_config = ConfigDict(extra="forbid")
    meter_id: str
    action: CommandAction
    command_id: str
    expires_at: AwareDatetime
    # A purchase: sealed with the command, so neither can be altered on the way.
    amount: Decimal | None = Field(default=None, gt=0)
    purchase_count: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _purchase(self) -> _PlainEnvelope:
        given = (self.amount is not None, self.purchase_count is not None)
        if given != ((True, True) if self.action == "credit" else (False, False)):
            raise ValueError("a credit command, and only one, carries amount and purchase_count")
        return self


class PlainCommandOpener:
    """Unsealed JSON envelopes (development only; production refuses to start with it)."""

    def open(
        self, envelope: str, *, meter_id: str, now: datetime, last_counter: int = 0
    ) -> OpenedCommand:
        try:
            command = _PlainEnvelope.model_validate(json.loads(envelope))
        except (ValueError, ValidationError) as error:
            raise RefusedCommand(f"malformed envelope: {_first_line(error)}") from None
        if command.meter_id != meter_id:
            raise RefusedCommand(f"envelope is for meter {command.meter_id}, not {meter_id}")
        if now >= command.expires_at:
            raise RefusedCommand(EXPIRED)
        purchase = None
        if command.amount is not None and command.purchase_count is not None:
            purchase = Purchase(command.amount, command.purchase_count)
        return OpenedCommand(
            command_id=command.command_id, action=command.action, purchase=purchase
        )


_SEALED_ACTIONS: dict[str, CommandAction] = {
    "trip": "trip",
    "close": "close",
    "credit": "credit",
    "hold_on": "hold_on",
    "hold_off": "hold_off",
}


class SealedCommandOpener:
    """The encrypted, MACed envelope (``prepaid_common.sealing``), verified before a write.

    For meters that cannot verify envelopes themselves (plain Modbus, DL/T 645) the collector
    is the point of execution: it keeps each meter's last accepted counter and refuses any
    envelope not above it, so a captured command cannot be played again.
    """

    def __init__(self, ring: KeyRing) -> None:
        self.ring = ring
        self.last_counter: dict[str, int] = {}

    def open(
        self, envelope: str, *, meter_id: str, now: datetime, last_counter: int = 0
    ) -> OpenedCommand:
        try:
            command = open_text(
                envelope,
                self.ring,
                meter_id=meter_id,
                now=now,
                last_counter=max(self.last_counter.get(meter_id, 0), last_counter),
            )
        except EnvelopeRefused as refused:
            reason = EXPIRED if refused.kind == "expired" else f"refused: {refused}"
            raise RefusedCommand(reason, refused.kind) from None
        action = _SEALED_ACTIONS.get(command.kind)
        payload = command.payload
        command_id = payload.get("command_id")
        if action is None or not isinstance(command_id, str):
            raise RefusedCommand(f"refused: {command.kind} is not executed here", "malformed")
        purchase = None
        if action == "credit":
            try:
                purchase = Purchase(Decimal(payload["amount"]), int(payload["purchase_count"]))
            except (KeyError, ValueError, ArithmeticError, TypeError):
                raise RefusedCommand("refused: purchase unreadable", "malformed") from None
        # Taken even if the write then fails: a retry comes with a counter of its own.
        self.last_counter[meter_id] = command.counter
        return OpenedCommand(
            command_id=command_id, action=action, purchase=purchase, counter=command.counter
        )


def plain_envelope(
    *,
    meter_id: str,
    action: CommandAction,
    command_id: str,
    expires_at: datetime,
    amount: Decimal | None = None,
    purchase_count: int | None = None,
) -> str:
    """Build the envelope PlainCommandOpener accepts (tests and development tools)."""
    fields: dict[str, object] = {
        "meter_id": meter_id,
        "action": action,
        "command_id": command_id,
        "expires_at": expires_at.isoformat(),
    }
    if amount is not None:
        fields["amount"] = str(amount)
    if purchase_count is not None:
        fields["purchase_count"] = purchase_count
    return json.dumps(fields)


def check_purchase_matches(
    opened: OpenedCommand, *, amount: Decimal | None, purchase_count: int | None
) -> None:
    """Refuse a command whose request and sealed envelope disagree on the purchase."""
    sealed = (None, None) if opened.purchase is None else astuple(opened.purchase)
    if sealed != (amount, purchase_count):
        raise RefusedCommand(
            f"envelope says purchase {sealed[1]} of {sealed[0]}, "
            f"request {purchase_count} of {amount}"
        )


def check_capable(profile: Profile, action: CommandAction) -> None:
    """Refuse a command the meter model cannot carry out."""
    if action == "credit" and not profile.has_local_credit:
        raise RefusedCommand(f"profile {profile.name} keeps no local credit")
    if action in ("hold_on", "hold_off") and not (
        isinstance(profile, Dlt645Profile) and profile.has_relay
    ):
        # DL/T 645's remote control frame carries hold-power; no Modbus profile has it yet.
        raise RefusedCommand(f"profile {profile.name} has no hold-power control")
    if action != "credit" and not profile.has_relay:
        raise RefusedCommand(f"profile {profile.name} has no relay control")


def relay_command_value(profile: MeterProfile, action: RelayAction) -> tuple[int, int]:
    """Return (register, value) to write for an action; RefusedCommand if there is no relay."""
    if profile.relay is None:
        raise RefusedCommand(f"profile {profile.name} has no relay control")
    command = profile.relay.command
    return command.address, command.trip if action == "trip" else command.close


def expected_relay(action: RelayAction) -> RelayState:
    """Return the relay state an action leaves the meter in."""
    return "open" if action == "trip" else "closed"


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__
