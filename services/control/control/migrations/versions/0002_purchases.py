"""Control: commands may be purchases pushed to local-prepaid meters.

Revision ID: control_0002
Revises: control_0001

A purchase (action ``credit``) carries its amount (fen) and purchase count, sealed with it.
"""

import sqlalchemy as sa
from alembic import op

revision = "control_0002"
down_revision = "control_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("control_commands", sa.Column("amount", sa.BigInteger(), nullable=True))
    op.add_column("control_commands", sa.Column("purchase_count", sa.Integer(), nullable=True))


def downgrade() -> None:
    # SQLite 3.35+ drops a column in place.
    op.drop_column("control_commands", "purchase_count")
    op.drop_column("control_commands", "amount")
