"""The collector's HTTP API: registering DTUs and their meters, and what it says of them.

The gateway takes the same registration models on its public API, so a DTU the gateway
accepts is one the collector accepts too.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from prepaid_common.contracts.identifiers import Identifier
from prepaid_common.contracts.messages import RelayState

DtuKind = Literal["modbus-tcp", "rtu-over-tcp", "dtu-client"]
# Kinds the collector dials at host:port; a dtu-client dials the collector.
DIALLED_KINDS: tuple[DtuKind, ...] = ("modbus-tcp", "rtu-over-tcp")
# Whether a dial-in DTU sends its registration once on connect or before every packet.
RegistrationMode = Literal["once", "prefix"]
# Printable ASCII: what DTU configuration tools let one type as a registration or heartbeat.
PACKET_PATTERN = r"^[\x20-\x7e]{1,40}$"


def default_registration(dtu_id: str) -> str:
    """Return the registration packet a DTU sends unless configured otherwise."""
    return f"LOGIN:{dtu_id}"


class MeterRegistration(BaseModel):
    """A meter behind a DTU: its id, its address on the bus and its profile."""

    id: Identifier
    # A Modbus meter's unit id, or ``address``: the unit id as text or a DL/T 645 address.
    unit_id: int | None = Field(default=None, ge=1, le=247)
    address: str | None = Field(default=None, pattern=r"^[0-9]{1,12}$")
    profile: str = Field(min_length=1, max_length=64)

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
    """A meter's newest reading."""

    read_at: datetime
    energy_kwh: Decimal
    power_kw: Decimal | None


class MeterView(BaseModel):
    """A meter as the collector knows it: where it is, its link, relay and last reading."""

    id: str
    dtu_id: str
    unit_id: int | None
    address: str
    profile: str
    online: bool
    dtu_online: bool
    relay: RelayState | None
    last_reading: LastReading | None


class MeterPage(BaseModel):
    """A page of meters, ordered by id, and how many match in all."""

    items: list[MeterView]
    total: int
    limit: int
    offset: int


class DtuView(BaseModel):
    """A DTU's settings, its link state and the ids of its meters."""

    id: str
    name: str
    kind: str
    host: str | None
    port: int | None
    registration: str | None
    registration_mode: str
    heartbeat: str
    link_timeout_seconds: float
    enabled: bool
    online: bool
    last_seen_at: datetime | None
    meter_ids: list[str]


class DtuList(BaseModel):
    """Every DTU."""

    items: list[DtuView]


class ReadAllQueued(BaseModel):
    """What a read-all request queued on the collector that took it."""

    meters_queued_here: int
    dtus_here: int
