"""Billing: top-up holds, so the balance cap holds under concurrent counter top-ups.

Revision ID: billing_0004
Revises: billing_0003

* ``billing_top_up_holds``: headroom under an account's cap held for cash about to be taken
  (one per account and receipt), until the payment is credited or the hold expires.
"""

import sqlalchemy as sa
from alembic import op
from prepaid_common.migration_ops import ts

revision = "billing_0004"
down_revision = "billing_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "billing_top_up_holds",
        sa.Column("account_id", sa.String(64), primary_key=True),
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("credited", sa.Boolean(), nullable=False),
        ts("created_at"),
        ts("expires_at"),
    )


def downgrade() -> None:
    op.drop_table("billing_top_up_holds")
