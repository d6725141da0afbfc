"""The billing service's tables."""

from __future__ import annotations

from prepaid_common.db import Energy, Money, ScaledDecimal, UtcDateTime
from prepaid_common.service import service_metadata
from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
)

metadata, plumbing = service_metadata("billing")

accounts = Table(
    "billing_accounts",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    # Flat tariff for now: yuan per kWh with four decimals.
    Column("price_per_kwh", ScaledDecimal(4), nullable=False),
    Column("trip_line", Money(), nullable=False),
    Column("warning_line", Money(), nullable=False),
    Column("supply", String(8), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
)

meters = Table(
    "billing_meters",
    metadata,
    Column("meter_id", String(64), primary_key=True),
    Column("account_id", String(64), ForeignKey("billing_accounts.id"), nullable=False),
    Column("start_kwh", Energy()),
    Column("last_kwh", Energy()),
    Column("last_read_at", UtcDateTime()),
    Column("charged", Money(), nullable=False),
    Column("bound_at", UtcDateTime(), nullable=False),
    Index("ix_billing_meters_account", "account_id"),
)

transactions = Table(
    "billing_transactions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("operation_key", String(200), nullable=False, unique=True),
    Column("kind", String(32), nullable=False),
    Column("account_id", String(64), nullable=False),
    Column("memo", String(400), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
)

entries = Table(
    "billing_entries",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("transaction_id", String(36), ForeignKey("billing_transactions.id"), nullable=False),
    Column("ledger_account", String(100), nullable=False),
    Column("amount", Money(), nullable=False),
    Index("ix_billing_entries_ledger", "ledger_account", "id"),
)

readings = Table(
    "billing_readings",
    metadata,
    Column("meter_id", String(64), primary_key=True),
    Column("read_at", UtcDateTime(), primary_key=True),
    Column("energy_kwh", Energy(), nullable=False),
    Column("received_at", UtcDateTime(), nullable=False),
)

anomalies = Table(
    "billing_anomalies",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("meter_id", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("detail", String(400), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Index("ix_billing_anomalies_meter", "meter_id", "at"),
)
