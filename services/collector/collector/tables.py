"""The collector's tables: DTUs, meters with their link state, and accepted commands."""

from __future__ import annotations

from prepaid_common.db import Energy, ScaledDecimal, UtcDateTime
from prepaid_common.service import service_metadata
from sqlalchemy import (
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata, plumbing = service_metadata("collector")

dtus = Table(
    "collector_dtus",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("host", String(255), nullable=False),
    Column("port", Integer, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("online", Boolean, nullable=False),
    Column("last_seen_at", UtcDateTime(), nullable=True),
)

meters = Table(
    "collector_meters",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("dtu_id", String(64), ForeignKey("collector_dtus.id"), nullable=False),
    Column("unit_id", Integer, nullable=False),
    Column("profile", String(64), nullable=False),
    Column("online", Boolean, nullable=False),
    Column("relay", String(8), nullable=True),
    Column("last_energy_kwh", Energy(), nullable=True),
    Column("last_power_kw", ScaledDecimal(3), nullable=True),
    Column("last_read_at", UtcDateTime(), nullable=True),
    Column("consecutive_failures", Integer, nullable=False),
    # One address per bus: two meters answering the same unit id would garble each other.
    UniqueConstraint("dtu_id", "unit_id", name="uq_collector_meters_dtu_unit"),
)

# A command accepted from the bus waits here until executed, so it survives a crash.
pending_commands = Table(
    "collector_pending_commands",
    metadata,
    Column("command_id", String(64), primary_key=True),
    Column("meter_id", String(64), nullable=False),
    Column("action", String(8), nullable=False),
    Column("envelope", Text, nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("received_at", UtcDateTime(), nullable=False),
    Index("ix_collector_pending_commands_meter", "meter_id", "received_at"),
)
