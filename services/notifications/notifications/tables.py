"""The notifications service's tables."""

from __future__ import annotations

from prepaid_common.db import UtcDateTime
from prepaid_common.service import service_metadata
from sqlalchemy import Boolean, Column, Index, Integer, String, Table, Text, UniqueConstraint

metadata, plumbing = service_metadata("notifications")

# One row per message to one address on one channel; dedup_key (episode, channel, address)
# makes a fact heard twice one message.
messages = Table(
    "notifications_messages",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("dedup_key", String(300), nullable=False, unique=True),
    Column("kind", String(32), nullable=False),
    Column("recipient", String(64), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("address", String(200), nullable=False),
    Column("title", String(200), nullable=False),
    Column("text", Text(), nullable=False),
    # The template parameters, JSON (an ordered list of [name, value]).
    Column("params", Text(), nullable=False),
    # pending, sent, failed (attempts used up or refused for good).
    Column("status", String(16), nullable=False),
    Column("attempts", Integer(), nullable=False),
    Column("not_before", UtcDateTime(), nullable=False),
    Column("next_attempt_at", UtcDateTime(), nullable=False),
    Column("provider_answer", Text(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("sent_at", UtcDateTime()),
    Index("ix_notifications_messages_due", "status", "next_attempt_at"),
    Index("ix_notifications_messages_recipient", "recipient", "created_at"),
)

# An account's crossing of a level: open once told, closed (re-armed) by the balance going
# back above the line or the supply changing; count numbers the episodes.
crossings = Table(
    "notifications_crossings",
    metadata,
    Column("account_id", String(64), primary_key=True),
    Column("topic", String(32), primary_key=True),
    Column("line", String(32)),
    Column("open", Boolean(), nullable=False),
    Column("count", Integer(), nullable=False),
    Column("opened_at", UtcDateTime(), nullable=False),
)

preferences = Table(
    "notifications_preferences",
    metadata,
    Column("account_id", String(64), primary_key=True),
    # JSON: {"phones": [...], "emails": [...], "openids": [...]}
    Column("contacts", Text(), nullable=False),
    Column("opted_out", Boolean(), nullable=False),
    # JSON: {kind: [channel, ...]}
    Column("channels", Text(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

subscriptions = Table(
    "notifications_webhook_subscriptions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("url", String(2000), nullable=False),
    # JSON list of event types.
    Column("events", Text(), nullable=False),
    Column("description", String(200), nullable=False),
    # The HMAC key: shown once when created, kept to sign every delivery.
    Column("secret", String(100), nullable=False),
    Column("active", Boolean(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("created_by", String(64), nullable=False),
)

deliveries = Table(
    "notifications_webhook_deliveries",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("subscription_id", String(36), nullable=False),
    Column("event_id", String(300), nullable=False),
    Column("event_type", String(32), nullable=False),
    Column("body", Text(), nullable=False),
    # pending, delivered, failed
    Column("status", String(16), nullable=False),
    Column("attempts", Integer(), nullable=False),
    Column("next_attempt_at", UtcDateTime(), nullable=False),
    Column("response_status", Integer()),
    Column("last_error", Text(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("delivered_at", UtcDateTime()),
    UniqueConstraint("subscription_id", "event_id", name="uq_notifications_deliveries_event"),
    Index("ix_notifications_deliveries_due", "status", "next_attempt_at"),
    Index("ix_notifications_deliveries_subscription", "subscription_id", "created_at"),
)
