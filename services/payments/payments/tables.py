"""The payments service's tables."""

from __future__ import annotations

from prepaid_common.db import Money, UtcDateTime
from prepaid_common.service import service_metadata
from sqlalchemy import Column, Index, Integer, String, Table, Text, UniqueConstraint

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

orders = Table(
    "payments_orders",
    metadata,
    Column("out_trade_no", String(32), primary_key=True),
    Column("account_id", String(64), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("provider", String(16), nullable=False),
    Column("amount", Money(), nullable=False),
    Column("status", String(16), nullable=False),
    Column("operator", String(64), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    # What the payer needs (code_url, h5_url, qr_code, pay_url or the jsapi parameters), JSON.
    Column("pay_data", Text(), nullable=False),
    Column("paid_at", UtcDateTime()),
    # The provider's transaction id: one order is paid by one transaction, credited once.
    Column("transaction_id", String(64)),
    Column("payment_id", String(36)),
    Column("refunded_amount", Money(), nullable=False),
    Column("queries", Integer(), nullable=False),
    Column("next_query_at", UtcDateTime(), nullable=False),
    UniqueConstraint("provider", "transaction_id", name="uq_payments_orders_transaction"),
    Index("ix_payments_orders_silent", "status", "next_query_at"),
    Index("ix_payments_orders_account", "account_id", "created_at"),
)

refunds = Table(
    "payments_refunds",
    metadata,
    Column("out_refund_no", String(64), primary_key=True),
    Column("out_trade_no", String(32), nullable=False),
    Column("account_id", String(64), nullable=False),
    Column("amount", Money(), nullable=False),
    Column("reason", String(80), nullable=False),
    Column("status", String(16), nullable=False),
    Column("operator", String(64), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("succeeded_at", UtcDateTime()),
    # Set when the provider is first asked: a refund sent and not settled is asked about
    # again (its notification may be lost); one never sent is an operator's to decide.
    Column("sent_at", UtcDateTime()),
    Column("next_query_at", UtcDateTime()),
    Index("ix_payments_refunds_open", "status", "next_query_at"),
)

issues = Table(
    "payments_issues",
    metadata,
    # Deterministic (kind, provider, trade, transaction): a retried notification adds none.
    Column("id", String(200), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("provider", String(16), nullable=False),
    Column("out_trade_no", String(64)),
    Column("detail", Text(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Index("ix_payments_issues_created", "created_at"),
)
