"""Collector: pending commands of every kind (``alarm_thresholds`` is longer than 8).

Revision ID: collector_0006_secure
Revises: collector_0005

Time sets, alarm levels and sealed envelopes for secure meters wait in
``collector_pending_commands`` like relay commands and purchases; its ``action`` grows to
hold every kind's name.
"""

import sqlalchemy as sa
from alembic import op

revision = "collector_0006_secure"
down_revision = "collector_0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # No foreign key points at this table: SQLite's batch copy is safe.
    with op.batch_alter_table("collector_pending_commands") as batch:
        batch.alter_column("action", existing_type=sa.String(8), type_=sa.String(20))


def downgrade() -> None:
    with op.batch_alter_table("collector_pending_commands") as batch:
        batch.alter_column("action", existing_type=sa.String(20), type_=sa.String(8))
