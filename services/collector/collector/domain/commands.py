"""Relay commands: opening the sealed envelope, and judging what the meter did."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from prepaid_common.contracts import RelayAction, RelayState
from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError

from collector.domain.profiles import MeterProfile

EXPIRED = "expired"


class RefusedCommand(Exception):
    """An envelope that must not be executed (forged, altered, replayed, expired...)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class OpenedCommand:
    """What a verified envelope authorises."""

    command_id: str
    action: RelayAction


class CommandOpener(Protocol):
    """Verify a sealed command for one meter; raise RefusedCommand when it must not run."""

    def open(self, envelope: str, *, meter_id: str, now: datetime) -> OpenedCommand:
        """Return the command the envelope carries, or raise RefusedCommand."""
        ...


class _PlainEnvelope(BaseModel):
    model_config = ConfigDict(extra="forbid")
    meter_id: str
    action: RelayAction
    command_id: str
    expires_at: AwareDatetime


class PlainCommandOpener:
    """Unsealed JSON envelopes (development; the 3DES opener replaces it)."""

    def open(self, envelope: str, *, meter_id: str, now: datetime) -> OpenedCommand:
        try:
            command = _PlainEnvelope.model_validate(json.loads(envelope))
        except (ValueError, ValidationError) as error:
            raise RefusedCommand(f"malformed envelope: {_first_line(error)}") from None
        if command.meter_id != meter_id:
            raise RefusedCommand(f"envelope is for meter {command.meter_id}, not {meter_id}")
        if now >= command.expires_at:
            raise RefusedCommand(EXPIRED)
        return OpenedCommand(command_id=command.command_id, action=command.action)


def plain_envelope(
    *, meter_id: str, action: RelayAction, command_id: str, expires_at: datetime
) -> str:
    """Build the envelope PlainCommandOpener accepts (tests and development tools)."""
    return json.dumps(
        {
            "meter_id": meter_id,
            "action": action,
            "command_id": command_id,
            "expires_at": expires_at.isoformat(),
        }
    )


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
