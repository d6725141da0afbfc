"""The collector's tables: DTUs, meters with their link state, accepted commands, replicas."""

from __future__ import annotations

from prepaid_common.db import Energy, Money, ScaledDecimal, UtcDateTime
from prepaid_common.service import service_metadata
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    true,
)

metadata, plumbing = service_metadata("collector")

dtus = Table(
    "collector_dtus",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(128), nullable=False),
    # modbus-tcp (gateway, MBAP), rtu-over-tcp (transparent server), dtu-client (dials in).
    Column("kind", String(16), nullable=False),
    # Where we dial; "" and 0 for a DTU that dials in (see migration collector_0002).
    Column("host", String(255), nullable=False),
    Column("port", Integer, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("online", Boolean, nullable=False),
    Column("last_seen_at", UtcDateTime(), nullable=True),
    # A dial-in DTU: the packet that names it, whether it prefixes every packet, its
    # heartbeat, and how long without any traffic means the link is dead.
    Column("registration", String(80), nullable=True),
    Column("registration_mode", String(8), nullable=False, server_default="once"),
    Column("heartbeat", String(80), nullable=False, server_default="HB"),
    Column("link_timeout_seconds", Float, nullable=False, server_default="180"),
    # Bumped by every registration that changes the DTU or its meters (collector_0004).
    Column("revision", Integer, nullable=False, server_default="0"),
    # Why it is offline and since when (since when online, reason None), and a dialled
    # DTU's next connection attempt (collector_0006).
    Column("state_reason", String(400), nullable=True),
    Column("state_since", UtcDateTime(), nullable=True),
    Column("next_attempt_at", UtcDateTime(), nullable=True),
    Index("ix_collector_dtus_registration", "registration", unique=True),
)

meters = Table(
    "collector_meters",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("dtu_id", String(64), ForeignKey("collector_dtus.id"), nullable=False),
    # The Modbus unit id as text, or a DL/T 645 meter's 12-digit address.
    Column("address", String(12), nullable=False),
    # The Modbus unit id (None for DL/T 645 meters): kept for the views.
    Column("unit_id", Integer, nullable=True),
    Column("profile", String(64), nullable=False),
    Column("online", Boolean, nullable=False),
    Column("relay", String(8), nullable=True),
    # The last sealed command counter taken for the meter (anti-replay across restarts).
    Column("command_counter", BigInteger, nullable=True),
    Column("last_energy_kwh", Energy(), nullable=True),
    Column("last_power_kw", ScaledDecimal(3), nullable=True),
    Column("last_read_at", UtcDateTime(), nullable=True),
    Column("consecutive_failures", Integer, nullable=False),
    # Disabled: kept, not polled (collector_0006).
    Column("enabled", Boolean, nullable=False, server_default=true()),
    # The serial number the meter must answer with (given, or read on first contact).
    Column("identity", String(64), nullable=True),
    # The last reading's values beyond energy and power (TOU, voltage, current), as JSON.
    Column("last_detail", Text, nullable=True),
    # One address per bus: two meters answering the same address would garble each other.
    UniqueConstraint("dtu_id", "address", name="uq_collector_meters_dtu_address"),
)

# Each condition a meter is in, one row per kind (link, identity, clock...): why, since
# when, how often seen since, and for a link state when its next poll is due at the earliest.
meter_states = Table(
    "collector_meter_states",
    metadata,
    Column("meter_id", String(64), primary_key=True),
    Column("kind", String(16), primary_key=True),
    Column("reason", String(32), nullable=False),
    Column("detail", String(400), nullable=False),
    Column("since", UtcDateTime(), nullable=False),
    Column("count", Integer, nullable=False),
    Column("until", UtcDateTime(), nullable=True),
)

# Meters moved between places (DTU, address, profile), with the final reading of the old one.
meter_moves = Table(
    "collector_meter_moves",
    metadata,
    Column(
        "id",
        BigInteger().with_variant(Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    Column("meter_id", String(64), nullable=False),
    Column("from_dtu_id", String(64), nullable=False),
    Column("from_address", String(12), nullable=False),
    Column("from_profile", String(64), nullable=False),
    Column("to_dtu_id", String(64), nullable=False),
    Column("to_address", String(12), nullable=False),
    Column("to_profile", String(64), nullable=False),
    Column("final_kwh", Energy(), nullable=True),
    Column("final_read_at", UtcDateTime(), nullable=True),
    Column("reason", String(400), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Index("ix_collector_meter_moves_meter", "meter_id", "at"),
)

# A command accepted from the bus waits here until executed, so it survives a crash.
pending_commands = Table(
    "collector_pending_commands",
    metadata,
    Column("command_id", String(64), primary_key=True),
    Column("meter_id", String(64), nullable=False),
    # Every command kind's name (collector_0006_secure).
    Column("action", String(20), nullable=False),
    Column("envelope", Text, nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("received_at", UtcDateTime(), nullable=False),
    # A purchase for a local-prepaid meter (action "credit"); None for relay commands.
    Column("amount", Money(), nullable=True),
    Column("purchase_count", Integer, nullable=True),
    Index("ix_collector_pending_commands_meter", "meter_id", "received_at"),
)

# Live collector processes: each renews its lease; dialled DTUs are shared among the live.
replicas = Table(
    "collector_replicas",
    metadata,
    Column("instance", String(64), primary_key=True),
    Column("lease_until", UtcDateTime(), nullable=False),
    Column("started_at", UtcDateTime(), nullable=False),
)

# Read-now requests any replica may have taken: meter_id None means every meter.
read_requests = Table(
    "collector_read_requests",
    metadata,
    Column(
        "id",
        BigInteger().with_variant(Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    Column("meter_id", String(64), nullable=True),
    Column("requested_at", UtcDateTime(), nullable=False),
)
