"""Notifications: messages, crossings, preferences, webhook subscriptions and deliveries.

Revision ID: notifications_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from prepaid_common.migration_ops import create_plumbing_tables, drop_plumbing_tables, ts

revision = "notifications_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_plumbing_tables("notifications")
    op.create_table(
        "notifications_messages",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("dedup_key", sa.String(300), nullable=False, unique=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("recipient", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("address", sa.String(200), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        ts("not_before"),
        ts("next_attempt_at"),
        sa.Column("provider_answer", sa.Text(), nullable=False),
        ts("created_at"),
        ts("sent_at", nullable=True),
    )
    op.create_index(
        "ix_notifications_messages_due", "notifications_messages", ["status", "next_attempt_at"]
    )
    op.create_index(
        "ix_notifications_messages_recipient", "notifications_messages", ["recipient", "created_at"]
    )
    op.create_table(
        "notifications_crossings",
        sa.Column("account_id", sa.String(64), primary_key=True),
        sa.Column("topic", sa.String(32), primary_key=True),
        sa.Column("line", sa.String(32)),
        sa.Column("open", sa.Boolean(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        ts("opened_at"),
    )
    op.create_table(
        "notifications_preferences",
        sa.Column("account_id", sa.String(64), primary_key=True),
        sa.Column("contacts", sa.Text(), nullable=False),
        sa.Column("opted_out", sa.Boolean(), nullable=False),
        sa.Column("channels", sa.Text(), nullable=False),
        ts("updated_at"),
    )
    op.create_table(
        "notifications_webhook_subscriptions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("events", sa.Text(), nullable=False),
        sa.Column("description", sa.String(200), nullable=False),
        sa.Column("secret", sa.String(100), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        ts("created_at"),
        sa.Column("created_by", sa.String(64), nullable=False),
    )
    op.create_table(
        "notifications_webhook_deliveries",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("subscription_id", sa.String(36), nullable=False),
        sa.Column("event_id", sa.String(300), nullable=False),
        sa.Column("event_type", sa.String(32), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        ts("next_attempt_at"),
        sa.Column("response_status", sa.Integer()),
        sa.Column("last_error", sa.Text(), nullable=False),
        ts("created_at"),
        ts("delivered_at", nullable=True),
        sa.UniqueConstraint(
            "subscription_id", "event_id", name="uq_notifications_deliveries_event"
        ),
    )
    op.create_index(
        "ix_notifications_deliveries_due",
        "notifications_webhook_deliveries",
        ["status", "next_attempt_at"],
    )
    op.create_index(
        "ix_notifications_deliveries_subscription",
        "notifications_webhook_deliveries",
        ["subscription_id", "created_at"],
    )


def downgrade() -> None:
    op.drop_table("notifications_webhook_deliveries")
    op.drop_table("notifications_webhook_subscriptions")
    op.drop_table("notifications_preferences")
    op.drop_table("notifications_crossings")
    op.drop_table("notifications_messages")
    drop_plumbing_tables("notifications")
