"""The control service's tables."""

from __future__ import annotations

from prepaid_common.db import Money, ScaledDecimal, UtcDateTime
from prepaid_common.service import service_metadata
from sqlalchemy import BigInteger, Boolean, Column, Index, Integer, String, Table

metadata, plumbing = service_metadata("control")

commands = Table(
    "control_commands",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("meter_id", String(64), nullable=False),
    # trip, close, credit, hold_on, hold_off, time_set, alarm_thresholds (control_0005),
    # power_limit.
    Column("action", String(20), nullable=False),
    # "billing" for automatic requests, "operator:<name>" for people.
    Column("origin", String(100), nullable=False),
    Column("reason", String(400), nullable=False),
    # Billing's request id: a request delivered twice makes one command.
    Column("request_id", String(64), unique=True),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("error", String(400), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    # A purchase pushed to a local-prepaid meter (action "credit"); None for relay commands.
    Column("amount", Money(), nullable=True),
    Column("purchase_count", Integer, nullable=True),
    # The credit alarm levels an ``alarm_thresholds`` command sets (yuan); None otherwise.
    Column("alarm_first", Money(), nullable=True),
    Column("alarm_second", Money(), nullable=True),
    # The power limit (kW, two decimals) a ``power_limit`` command sets (control_0006).
    Column("power_limit_kw", ScaledDecimal(2), nullable=True),
    # The group command (``shed:<id>``, ``shed:<id>:end``) it belongs to, for its progress.
    Column("batch", String(100), nullable=True),
    Index("ix_control_commands_meter", "meter_id", "created_at"),
    Index("ix_control_commands_batch", "batch"),
    Index("ix_control_commands_status", "status", "expires_at"),
)

# One row per meter control has commanded or heard of: its envelope counter, billing's
# decided supply and the relay the meter reported, and the reconciliation between them.
meters = Table(
    "control_meters",
    metadata,
    Column("meter_id", String(64), primary_key=True),
    # The last counter sealed into a command for the meter (the meter wants each higher).
    Column("counter", BigInteger, nullable=False),
    Column("algorithm", String(8), nullable=False),
    Column("supply", String(3), nullable=True),
    Column("supply_reason", String(400), nullable=True),
    Column("supply_at", UtcDateTime(), nullable=True),
    Column("relay", String(6), nullable=True),
    Column("relay_at", UtcDateTime(), nullable=True),
    Column("differs_since", UtcDateTime(), nullable=True),
    Column("next_attempt_at", UtcDateTime(), nullable=True),
    Column("reissues", Integer, nullable=False),
    Column("alarmed", Boolean, nullable=False),
    # No relay reported yet and a command for it failed: treated as disagreeing, so the
    # command is issued again (a meter cut while its DTU was away is cut when it returns).
    Column("unconfirmed", Boolean, nullable=False),
    # An operator's own trip or close: the decision returns when it lapses.
    Column("override_until", UtcDateTime(), nullable=True),
    Index("ix_control_meters_differs", "differs_since"),
)
