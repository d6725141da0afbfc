"""Payments: provider orders (WeChat Pay, Alipay), their refunds, and issues for operators.

Revision ID: payments_0002
Revises: payments_0001
"""

import sqlalchemy as sa
from alembic import op
from prepaid_common.migration_ops import ts

revision = "payments_0002"
down_revision = "payments_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "payments_orders",
        sa.Column("out_trade_no", sa.String(32), primary_key=True),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("operator", sa.String(64), nullable=False),
        ts("created_at"),
        ts("expires_at"),
        sa.Column("pay_data", sa.Text(), nullable=False),
        ts("paid_at", nullable=True),
        sa.Column("transaction_id", sa.String(64)),
        sa.Column("payment_id", sa.String(36)),
        sa.Column("refunded_amount", sa.BigInteger(), nullable=False),
        sa.Column("queries", sa.Integer(), nullable=False),
        ts("next_query_at"),
        sa.UniqueConstraint("provider", "transaction_id", name="uq_payments_orders_transaction"),
    )
    op.create_index("ix_payments_orders_silent", "payments_orders", ["status", "next_query_at"])
    op.create_index("ix_payments_orders_account", "payments_orders", ["account_id", "created_at"])
    op.create_table(
        "payments_refunds",
        sa.Column("out_refund_no", sa.String(64), primary_key=True),
        sa.Column("out_trade_no", sa.String(32), nullable=False),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(80), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("operator", sa.String(64), nullable=False),
        ts("created_at"),
        ts("succeeded_at", nullable=True),
    )
    op.create_table(
        "payments_issues",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("out_trade_no", sa.String(64)),
        sa.Column("detail", sa.Text(), nullable=False),
        ts("created_at"),
    )
    op.create_index("ix_payments_issues_created", "payments_issues", ["created_at"])


def downgrade() -> None:
    op.drop_table("payments_issues")
    op.drop_table("payments_refunds")
    op.drop_table("payments_orders")
