"""The collector's HTTP API: registering DTUs and their meters, and what it says of them.

The gateway takes the same registration models on its public API, so a DTU the gateway
accepts is one the collector accepts too.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from prepaid_common.contracts.identifiers import Identifier
from prepaid_common.contracts.messages import CommandAction, RelayState

DtuKind = Literal["modbus-tcp", "rtu-over-tcp", "dtu-client"]
# Kinds the collector dials at host:port; a dtu-client dials the collector.
DIALLED_KINDS: tuple[DtuKind, ...] = ("modbus-tcp", "rtu-over-tcp")
# Whether a dial-in DTU sends its registration once on connect or before every packet.
RegistrationMode = Literal["once", "prefix"]
# Printable ASCII: what DTU configuration tools let one type as a registration or heartbeat.
PACKET_PATTERN = r"^[\x20-\x7e]{1,40}$"
# A meter's address as the server takes it: a Modbus unit id 1-247 (leading zeros allowed)
# or a 12-digit DL/T 645 address. Which of the two a meter needs follows from its profile.
ADDRESS_PATTERN = r"^(0{0,9}([1-9]|[1-9][0-9]|1[0-9][0-9]|2[0-3][0-9]|24[0-7])|[0-9]{12})$"
# A profile's name, as the profile files may be named.
PROFILE_PATTERN = r"^[a-z0-9][a-z0-9-]*$"
# A meter's serial number (or other identity) as its profile reads it.
IDENTITY_PATTERN = r"^[0-9A-Za-z._-]{1,32}$"


def default_registration(dtu_id: str) -> str:
    """Return the registration packet a DTU sends unless configured otherwise."""
    return f"LOGIN:{dtu_id}"


class MeterRegistration(BaseModel):
    """A meter behind a DTU: its id, its address on the bus and its profile."""

    id: Identifier
    # A Modbus meter's unit id, or ``address``: the unit id as text or a DL/T 645 address.
    unit_id: int | None = Field(default=None, ge=1, le=247)
    address: str | None = Field(default=None, pattern=ADDRESS_PATTERN)
    profile: str = Field(min_length=1, max_length=64, pattern=PROFILE_PATTERN)
    # The serial number the meter must answer with (profiles with an identity register);
    # none: the collector takes the one it reads on first contact.
    identity: str | None = Field(default=None, pattern=IDENTITY_PATTERN)

    @model_validator(mode="after")
    def _one_address(self) -> MeterRegistration:
        if self.unit_id is None and self.address is None:
            raise ValueError("give unit_id (Modbus) or address (Modbus or DL/T 645)")
        if self.unit_id is not None and self.address not in (None, str(self.unit_id)):
            raise ValueError("unit_id and address disagree")
        return self

    @property
    def bus_address(self) -> str:
        """Return the address as given: a unit id's digits or a DL/T 645 address."""
        return self.address if self.address is not None else str(self.unit_id)


class DtuRegistration(BaseModel):
    """A DTU, how it is reached, and the meters behind it (created or updated as a whole)."""

    id: Identifier
    name: str = Field(min_length=1, max_length=128)
    kind: DtuKind = "modbus-tcp"
    # Where we dial (modbus-tcp, rtu-over-tcp); a dtu-client dials us.
    host: str | None = Field(default=None, min_length=1, max_length=255)
    port: int | None = Field(default=None, ge=1, le=65535)
    enabled: bool = True
    # A dtu-client's registration packet (default ``LOGIN:<id>``), sent once on connect
    # or before every packet, its heartbeat, and the silence after which the link is dead.
    registration: str | None = Field(default=None, pattern=PACKET_PATTERN)
    registration_mode: RegistrationMode = "once"
    heartbeat: str = Field(default="HB", pattern=PACKET_PATTERN)
    link_timeout_seconds: float = Field(default=180.0, gt=0, le=86400)
    meters: list[MeterRegistration] = Field(default_factory=list, max_length=247)

    @model_validator(mode="after")
    def _where(self) -> DtuRegistration:
        if self.kind in DIALLED_KINDS and (self.host is None or self.port is None):
            raise ValueError(f"a {self.kind} DTU needs host and port")
        if self.kind == "dtu-client" and self.registration is None:
            self.registration = default_registration(self.id)
        return self


class LastReading(BaseModel):
    """A meter's newest reading, with every value its profile reads (null: not read)."""

    read_at: datetime
    energy_kwh: Decimal
    power_kw: Decimal | None
    # Time-of-use registers (sharp, peak, flat, valley), kWh.
    tou_kwh: dict[str, Decimal] | None = None
    voltage_v: Decimal | None = None
    current_a: Decimal | None = None
    relay: RelayState | None = None
    # The power limit the meter holds (kW), as read back with the reading; null for a model
    # without one, or a meter with no limit set.
    power_limit_kw: Decimal | None = None


# Why a meter is not answering or not billed: the reasons the collector tells apart.
MeterStateReason = Literal[
    "no_reply",
    "crc_error",
    "wrong_unit_id",
    "garbled",
    "exception",
    "implausible",
    "dtu_offline",
    "identity_mismatch",
    "clock",
    "overload",
    "malicious_load",
]


class MeterState(BaseModel):
    """One condition of a meter: what kind, why, since when, and what was seen."""

    kind: str = Field(description="link, identity, clock...: one condition of each kind")
    reason: str = Field(description="no_reply, crc_error, wrong_unit_id, dtu_offline...")
    since: datetime
    detail: str
    count: int = Field(description="times seen since it began")
    until: datetime | None = Field(
        default=None, description="a link state: the next poll is not before this (back-off)"
    )


class MeterView(BaseModel):
    """A meter as the collector knows it: where it is, its link, relay and last reading."""

    id: str
    dtu_id: str
    unit_id: int | None
    address: str
    profile: str
    enabled: bool = True
    online: bool
    dtu_online: bool
    relay: RelayState | None
    # The commands its model carries out (trip, close, hold_on, hold_off, time_set, credit,
    # alarm_thresholds, power_limit); null where the collector did not say.
    commands: list[CommandAction] | None = None
    # "ok", "disabled", or the reason of its most pressing condition (see ``states``).
    state: str = "ok"
    states: list[MeterState] = Field(default_factory=list)
    # The serial number the meter is known by (profiles with an identity register).
    identity: str | None = None
    last_reading: LastReading | None


class MeterPage(BaseModel):
    """A page of meters, ordered by id, and how many match in all."""

    items: list[MeterView]
    total: int
    limit: int
    offset: int


class DtuState(BaseModel):
    """A DTU's link: online or why not, since when, and when the collector tries again."""

    state: Literal["online", "offline", "disabled", "unknown"]
    reason: str | None
    since: datetime | None
    next_attempt_at: datetime | None = Field(
        default=None, description="a dialled DTU that is offline: the next connection attempt"
    )


class DtuView(BaseModel):
    """A DTU's settings, its link state and the ids of its meters.

    The dial-in settings (``registration`` ... ``link_timeout_seconds``) are null for the
    kinds the collector dials; ``host`` and ``port`` are null for a DTU that dials in.
    """

    id: str
    name: str
    kind: str
    host: str | None
    port: int | None
    registration: str | None
    registration_mode: str | None
    heartbeat: str | None
    link_timeout_seconds: float | None
    enabled: bool
    online: bool
    last_seen_at: datetime | None
    link: DtuState | None = None
    meter_ids: list[str]


class DtuList(BaseModel):
    """Every DTU."""

    items: list[DtuView]


class ReadAllQueued(BaseModel):
    """What a read-all request queued on the collector that took it."""

    meters_queued_here: int
    dtus_here: int


class EnabledBody(BaseModel):
    """Turn polling of a DTU or a meter on or off."""

    model_config = ConfigDict(extra="forbid")

    # Strict: a 0 or "no" is a client's mistake to refuse, not a false to act on.
    enabled: bool = Field(strict=True)


class MoveMeter(BaseModel):
    """Where a meter goes: its new DTU, address on that bus, and profile (default: its own)."""

    dtu_id: Identifier
    unit_id: int | None = Field(default=None, ge=1, le=247)
    address: str | None = Field(default=None, pattern=ADDRESS_PATTERN)
    profile: str | None = Field(default=None, min_length=1, max_length=64, pattern=PROFILE_PATTERN)
    reason: str = Field(default="", max_length=400)

    @model_validator(mode="after")
    def _one_address(self) -> MoveMeter:
        if self.unit_id is None and self.address is None:
            raise ValueError("give unit_id (Modbus) or address (Modbus or DL/T 645)")
        if self.unit_id is not None and self.address not in (None, str(self.unit_id)):
            raise ValueError("unit_id and address disagree")
        return self

    @property
    def bus_address(self) -> str:
        return self.address if self.address is not None else str(self.unit_id)


class FinalReading(BaseModel):
    """The reading a meter left its old place with: read at the move, or the last one kept."""

    read_at: datetime
    energy_kwh: Decimal
    source: Literal["read_now", "last_reading"]


class MeterMoved(BaseModel):
    """A meter after its move, where it came from, and its final reading there."""

    meter: MeterView
    from_dtu_id: str
    from_address: str
    from_profile: str
    final_reading: FinalReading | None


class Removed(BaseModel):
    """What a removal took away."""

    dtu_id: str | None = None
    meter_ids: list[str]
