"""Control: command log and plumbing.

Revision ID: control_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from prepaid_common.migration_ops import create_plumbing_tables, drop_plumbing_tables, ts

revision = "control_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_plumbing_tables("control")
    op.create_table(
        "control_commands",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("meter_id", sa.String(64), nullable=False),
        sa.Column("action", sa.String(8), nullable=False),
        sa.Column("origin", sa.String(100), nullable=False),
        sa.Column("reason", sa.String(400), nullable=False),
        sa.Column("request_id", sa.String(64), unique=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(400), nullable=False),
        ts("created_at"),
        ts("expires_at"),
        ts("updated_at"),
    )
    op.create_index("ix_control_commands_meter", "control_commands", ["meter_id", "created_at"])
    op.create_index("ix_control_commands_status", "control_commands", ["status", "expires_at"])


def downgrade() -> None:
    op.drop_table("control_commands")
    drop_plumbing_tables("control")
