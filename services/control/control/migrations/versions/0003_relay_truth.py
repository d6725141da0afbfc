"""Control: each meter's envelope counter, decided supply and reported relay.

Revision ID: control_0003
Revises: control_0002

Sealed commands carry a per-meter counter that only grows; the relay the meter reports is
kept beside billing's decided supply so that a disagreement is commanded again until it ends.
"""

import sqlalchemy as sa
from alembic import op
from prepaid_common.migration_ops import ts

revision = "control_0003"
down_revision = "control_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "control_meters",
        sa.Column("meter_id", sa.String(64), primary_key=True),
        sa.Column("counter", sa.BigInteger(), nullable=False),
        sa.Column("algorithm", sa.String(8), nullable=False),
        sa.Column("supply", sa.String(3), nullable=True),
        sa.Column("supply_reason", sa.String(400), nullable=True),
        ts("supply_at", nullable=True),
        sa.Column("relay", sa.String(6), nullable=True),
        ts("relay_at", nullable=True),
        ts("differs_since", nullable=True),
        ts("next_attempt_at", nullable=True),
        sa.Column("reissues", sa.Integer(), nullable=False),
        sa.Column("alarmed", sa.Boolean(), nullable=False),
        sa.Column("unconfirmed", sa.Boolean(), nullable=False),
        ts("override_until", nullable=True),
    )
    op.create_index("ix_control_meters_differs", "control_meters", ["differs_since"])


def downgrade() -> None:
    op.drop_index("ix_control_meters_differs", "control_meters")
    op.drop_table("control_meters")
