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

from collector.domain.profiles import Dlt645Profile, MeterProfile, Profile, SecureSpec

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
class AlarmLevels:
    """The two credit alarm levels (yuan): the meter warns at ``first``, again at ``second``."""

    first: Decimal
    second: Decimal


@dataclass(frozen=True)
class OpenedCommand:
    """What a verified envelope authorises: a relay action, a purchase (``credit``), a
    time to set (``time_set``, UTC), alarm levels (``alarm_thresholds``) or a power limit
    (``power_limit``, kW)."""

    command_id: str
    action: CommandAction
    purchase: Purchase | None = None
    # The sealed envelope's counter (None for the plain one).
    counter: int | None = None
    time: datetime | None = None
    alarms: AlarmLevels | None = None
    power_limit_kw: Decimal | None = None


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
    # A time set's time (UTC), and alarm levels (yuan).
    time: AwareDatetime | None = None
    first: Decimal | None = Field(default=None, ge=0)
    second: Decimal | None = Field(default=None, ge=0)
    # A power limit (kW).
    kw: Decimal | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _purchase(self) -> _PlainEnvelope:
        given = (self.amount is not None, self.purchase_count is not None)
        if given != ((True, True) if self.action == "credit" else (False, False)):
            raise ValueError("a credit command, and only one, carries amount and purchase_count")
        if (self.time is not None) != (self.action == "time_set"):
            raise ValueError("a time_set command, and only one, carries time")
        levels = (self.first is not None, self.second is not None)
        if levels != ((True, True) if self.action == "alarm_thresholds" else (False, False)):
            raise ValueError("an alarm_thresholds command, and only one, carries first and second")
        if (self.kw is not None) != (self.action == "power_limit"):
            raise ValueError("a power_limit command, and only one, carries kw")
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
        alarms = None
        if command.first is not None and command.second is not None:
            alarms = AlarmLevels(command.first, command.second)
        return OpenedCommand(
            command_id=command.command_id,
            action=command.action,
            purchase=purchase,
            time=command.time,
            alarms=alarms,
            power_limit_kw=command.kw,
        )


_SEALED_ACTIONS: dict[str, CommandAction] = {
    "trip": "trip",
    "close": "close",
    "credit": "credit",
    "hold_on": "hold_on",
    "hold_off": "hold_off",
    "time_set": "time_set",
    "alarm_thresholds": "alarm_thresholds",
    "power_limit": "power_limit",
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
        purchase, time, alarms, kw = None, None, None, None
        try:
            if action == "credit":
                purchase = Purchase(Decimal(payload["amount"]), int(payload["purchase_count"]))
            elif action == "time_set":
                time = datetime.fromisoformat(str(payload["time"]))
                if time.tzinfo is None:
                    raise ValueError("a time set's time carries its zone")
            elif action == "alarm_thresholds":
                alarms = AlarmLevels(Decimal(payload["first"]), Decimal(payload["second"]))
            elif action == "power_limit":
                kw = Decimal(payload["kw"])
                if not kw.is_finite() or kw <= 0:
                    raise ValueError("a power limit is a positive number of kW")
        except (KeyError, ValueError, ArithmeticError, TypeError):
            raise RefusedCommand(f"refused: {action} unreadable", "malformed") from None
        # Taken even if the write then fails: a retry comes with a counter of its own.
        self.last_counter[meter_id] = command.counter
        return OpenedCommand(
            command_id=command_id,
            action=action,
            purchase=purchase,
            counter=command.counter,
            time=time,
            alarms=alarms,
            power_limit_kw=kw,
        )


def plain_envelope(
    *,
    meter_id: str,
    action: CommandAction,
    command_id: str,
    expires_at: datetime,
    amount: Decimal | None = None,
    purchase_count: int | None = None,
    time: datetime | None = None,
    alarms: AlarmLevels | None = None,
    power_limit_kw: Decimal | None = None,
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
    if time is not None:
        fields["time"] = time.isoformat()
    if alarms is not None:
        fields["first"], fields["second"] = str(alarms.first), str(alarms.second)
    if power_limit_kw is not None:
        fields["kw"] = str(power_limit_kw)
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


def secure_spec(profile: Profile | None) -> SecureSpec | None:
    """Return how a meter that verifies envelopes itself takes them (None for the others)."""
    return profile.secure if isinstance(profile, MeterProfile) else None


def supported_commands(profile: Profile) -> tuple[CommandAction, ...]:
    """Return the commands a meter model carries out (what its registers or frames allow)."""
    if isinstance(profile, Dlt645Profile):
        # DL/T 645's remote control frame trips, closes and switches hold-power.
        return ("trip", "close", "hold_on", "hold_off") if profile.has_relay else ()
    if profile.secure is not None:
        return profile.secure.commands
    kinds: list[CommandAction] = []
    if profile.relay is not None and profile.relay.command is not None:
        kinds += ["trip", "close"]
    if profile.hold_power is not None:
        kinds += ["hold_on", "hold_off"]
    if profile.clock is not None:
        kinds.append("time_set")
    if profile.local_credit is not None and profile.local_credit.takes_purchases:
        kinds.append("credit")
    if profile.alarm_thresholds is not None:
        kinds.append("alarm_thresholds")
    if profile.power_limit is not None:
        kinds.append("power_limit")
    return tuple(kinds)


_MISSING: dict[str, str] = {
    "trip": "has no relay control",
    "close": "has no relay control",
    "hold_on": "has no hold-power control",
    "hold_off": "has no hold-power control",
    "time_set": "has no clock to set",
    "credit": "keeps no local credit",
    "alarm_thresholds": "has no alarm thresholds",
    "power_limit": "has no power limit",
}


def check_capable(profile: Profile, action: CommandAction) -> None:
    """Refuse a command the meter model cannot carry out."""
    if action not in supported_commands(profile):
        raise RefusedCommand(f"profile {profile.name} {_MISSING[action]}")


def relay_command_value(profile: MeterProfile, action: RelayAction) -> tuple[int, int]:
    """Return (register, value) to write for an action; RefusedCommand if there is no relay."""
    if profile.relay is None or profile.relay.command is None:
        raise RefusedCommand(f"profile {profile.name} has no relay control")
    command = profile.relay.command
    return command.address, command.trip if action == "trip" else command.close


def expected_relay(action: RelayAction) -> RelayState:
    """Return the relay state an action leaves the meter in."""
    return "open" if action == "trip" else "closed"


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__
