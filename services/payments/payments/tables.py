"""The payments service's tables."""

from __future__ import annotations

from prepaid_common.db import Money, UtcDateTime
from prepaid_common.service import service_metadata
from sqlalchemy import Column, Index, String, Table, UniqueConstraint

metadata, plumbing = service_metadata("payments")

payments = Table(
    "payments_payments",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("account_id", String(64), nullable=False),
    Column("amount", Money(), nullable=False),
    Column("method", String(16), nullable=False),
    # The provider's or the counter's unique reference: the operation key.
    Column("reference", String(64), nullable=False),
    Column("operator", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    UniqueConstraint("method", "reference", name="uq_payments_method_reference"),
    Index("ix_payments_account", "account_id", "created_at"),
)
