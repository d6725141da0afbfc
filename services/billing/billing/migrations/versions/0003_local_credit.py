"""Billing: local-prepaid meters and the purchases pushed to them.

Revision ID: billing_0003
Revises: billing_0002

* ``billing_local_meters``: a meter that keeps its own credit, the price it debits, the
  baseline its read-back is compared from, the latest read-back and the mismatch flags.
* ``billing_purchases``: one purchase per top-up and local-prepaid meter, with the purchase
  count the meter must take, and how far its push got.
"""

import sqlalchemy as sa
from alembic import op
from prepaid_common.migration_ops import ts

revision = "billing_0003"
down_revision = "billing_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "billing_local_meters",
        sa.Column("meter_id", sa.String(64), primary_key=True),
        sa.Column("price", sa.BigInteger(), nullable=True),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("baseline_count", sa.Integer(), nullable=True),
        sa.Column("baseline_credit", sa.BigInteger(), nullable=True),
        sa.Column("baseline_kwh", sa.BigInteger(), nullable=True),
        ts("baseline_at", nullable=True),
        sa.Column("meter_count", sa.Integer(), nullable=True),
        sa.Column("meter_credit", sa.BigInteger(), nullable=True),
        sa.Column("meter_kwh", sa.BigInteger(), nullable=True),
        ts("read_at", nullable=True),
        sa.Column("count_alarm", sa.Boolean(), nullable=False),
        sa.Column("credit_alarm", sa.Boolean(), nullable=False),
        ts("created_at"),
    )
    op.create_table(
        "billing_purchases",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("meter_id", sa.String(64), nullable=False),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("operation_key", sa.String(200), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("purchase_count", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("request_id", sa.String(36), nullable=True),
        sa.Column("pushes", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(400), nullable=False),
        ts("created_at"),
        ts("updated_at"),
        ts("confirmed_at", nullable=True),
        sa.UniqueConstraint("meter_id", "operation_key", name="uq_billing_purchases_operation"),
        sa.UniqueConstraint(
            "meter_id", "epoch", "purchase_count", name="uq_billing_purchases_count"
        ),
    )
    op.create_index("ix_billing_purchases_request", "billing_purchases", ["request_id"])


def downgrade() -> None:
    op.drop_table("billing_purchases")
    op.drop_table("billing_local_meters")
