"""The control service's HTTP API: an operator's command, the command log, relay truth and
group commands' progress."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, Field, model_validator

from prepaid_common.contracts.identifiers import Identifier
from prepaid_common.contracts.messages import CommandAction

# Trip or close the relay, switch the meter's own hold-power (保电) on or off, set its
# clock to the time the command is sealed, set its two credit alarm levels, or set its
# power limit (kW; the meter trips its own relay above it).
OperatorAction = Literal[
    "trip", "close", "hold_on", "hold_off", "time_set", "alarm_thresholds", "power_limit"
]

# A power limit (kW): two decimals, as the meters' x0.01 kW registers hold it; above zero
# (a limit of nothing would trip every load) and below what a household supply carries.
PowerLimitKw = Annotated[Decimal, Field(gt=0, le=Decimal("999.99"), decimal_places=2)]


class AlarmThresholds(BaseModel):
    """A local-prepaid meter's two credit alarm levels (yuan): it warns when its credit falls
    to ``first``, and again, more urgently, at the lower ``second``."""

    first: Decimal = Field(ge=0, le=Decimal("99999999.99"), decimal_places=2)
    second: Decimal = Field(ge=0, le=Decimal("99999999.99"), decimal_places=2)

    @model_validator(mode="after")
    def _ordered(self) -> AlarmThresholds:
        if self.second > self.first:
            raise ValueError("second may not be above first")
        return self


class _Parameters(BaseModel):
    action: OperatorAction
    # The levels of an ``alarm_thresholds`` command (required for it, refused for others).
    alarm_thresholds: AlarmThresholds | None = None
    # The limit of a ``power_limit`` command (required for it, refused for others).
    power_limit_kw: PowerLimitKw | None = None

    @model_validator(mode="after")
    def _parameters(self) -> _Parameters:
        if (self.alarm_thresholds is not None) != (self.action == "alarm_thresholds"):
            raise ValueError("alarm_thresholds is given with action alarm_thresholds, and only")
        if (self.power_limit_kw is not None) != (self.action == "power_limit"):
            raise ValueError("power_limit_kw is given with action power_limit, and only")
        return self


class CommandBody(_Parameters):
    """What an operator asks of a meter on the public API."""

    reason: str = Field(default="operator command", max_length=400)


class PowerLimitBody(BaseModel):
    """The power limit (kW) a meter is to trip its own relay above, on the public API."""

    kw: PowerLimitKw
    reason: str = Field(default="power limit", max_length=400)


class OperatorCommand(_Parameters):
    """A command an operator gives, as the gateway passes it to control."""

    meter_id: Identifier
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
    # The levels an ``alarm_thresholds`` command sets; null for the others.
    alarm_thresholds: AlarmThresholds | None = None
    # The limit (kW) a ``power_limit`` command sets; null for the others.
    power_limit_kw: Decimal | None = None
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
