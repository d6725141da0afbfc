"""Control: the group command (load shedding, its end) each command belongs to.

Revision ID: control_0004
Revises: control_0003

A group command's progress (queued, sent, confirmed, failed) is read from its commands.
"""

import sqlalchemy as sa
from alembic import op

revision = "control_0004"
down_revision = "control_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("control_commands", sa.Column("batch", sa.String(100), nullable=True))
    op.create_index("ix_control_commands_batch", "control_commands", ["batch"])


def downgrade() -> None:
    op.drop_index("ix_control_commands_batch", "control_commands")
    # SQLite 3.35+ drops a column in place.
    op.drop_column("control_commands", "batch")
