"""Billing: the friendly hours' debt ceiling, an account term.

Revision ID: billing_0005_edges
Revises: billing_0004

* ``billing_accounts.friendly_debt_limit`` (fen): inside friendly hours a meter stays on only
  while the balance is above the cut line less this; existing accounts get the default,
  20.00 yuan.
"""

import sqlalchemy as sa
from alembic import op

revision = "billing_0005_edges"
down_revision = "billing_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("billing_accounts") as batch:
        batch.add_column(
            sa.Column("friendly_debt_limit", sa.BigInteger(), nullable=False, server_default="2000")
        )


def downgrade() -> None:
    with op.batch_alter_table("billing_accounts") as batch:
        batch.drop_column("friendly_debt_limit")
