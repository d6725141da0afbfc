"""The control service's HTTP API: an operator's relay command and the command log."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, Field

from prepaid_common.contracts.identifiers import Identifier
from prepaid_common.contracts.messages import CommandAction

# Trip or close the relay, or switch the meter's own hold-power (保电) on or off.
OperatorAction = Literal["trip", "close", "hold_on", "hold_off"]


class CommandBody(BaseModel):
    """What an operator asks of a meter's relay on the public API."""

    action: OperatorAction
    reason: str = Field(default="operator command", max_length=400)


class OperatorCommand(BaseModel):
    """A relay command an operator gives, as the gateway passes it to control."""

    meter_id: Identifier
    action: OperatorAction
    operator: str = Field(min_length=1, max_length=64)
    reason: str = Field(default="operator command", max_length=400)


class CommandView(BaseModel):
    """A command (relay switch or purchase) and where it stands."""

    id: str
    meter_id: str
    action: CommandAction
    # A purchase's amount (yuan) and count; null for relay commands.
    amount: Decimal | None = None
    purchase_count: int | None = None
    origin: str
    reason: str
    status: str
    attempts: int
    error: str
    created_at: datetime
    expires_at: datetime
    updated_at: datetime


class CommandPage(BaseModel):
    """A page of commands, newest first."""

    items: list[CommandView]
    limit: int
    offset: int


class RelayView(BaseModel):
    """A meter's decided supply beside the relay it reports, and since when they differ."""

    meter_id: str
    # Billing's decision ("on"/"off"), null until billing decided for the meter.
    supply: Literal["on", "off"] | None
    supply_reason: str | None
    supply_at: datetime | None
    # What the meter last reported ("open"/"closed"), null for a model that does not say.
    relay: Literal["open", "closed"] | None
    relay_at: datetime | None
    # Set while the relay disagrees with the supply (seen by the reconciliation sweep).
    differs_since: datetime | None
    reissues: int
    next_attempt_at: datetime | None
    alarmed: bool
    # An operator's own trip or close, left alone until then.
    override_until: datetime | None
    # No relay reported and the last command to switch it failed: it is asked again.
    unconfirmed: bool = False


class RelayPage(BaseModel):
    """A page of meters' supply and relay, by meter id."""

    items: list[RelayView]
    limit: int
    offset: int


class BatchProgress(BaseModel):
    """Where a group command (a load shedding, or its end) stands, meter by meter counted."""

    batch: str
    meters: int
    queued: int
    sent: int
    # The meter's relay agrees (its command succeeded, or a later re-issue made it good).
    confirmed: int
    # A final failure that still disagrees: the reconciliation keeps issuing it.
    failed: int
