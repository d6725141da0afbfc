"""The control service's tables."""

from __future__ import annotations

from prepaid_common.db import Money, UtcDateTime
from prepaid_common.service import service_metadata
from sqlalchemy import Column, Index, Integer, String, Table

metadata, plumbing = service_metadata("control")

commands = Table(
    "control_commands",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("meter_id", String(64), nullable=False),
    Column("action", String(8), nullable=False),
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
    Index("ix_control_commands_meter", "meter_id", "created_at"),
    Index("ix_control_commands_status", "status", "expires_at"),
)
