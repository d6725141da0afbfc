"""Collector: each meter's last accepted command counter survives a restart.

Revision ID: collector_0005
Revises: collector_0004

The collector verifies sealed commands for meters that cannot; it refuses any envelope whose
counter is not above the last one it took for the meter. Kept here, a captured envelope
cannot be replayed after the collector restarts (or after another replica takes the DTU).
"""

import sqlalchemy as sa
from alembic import op

revision = "collector_0005"
down_revision = "collector_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("collector_meters", sa.Column("command_counter", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    # SQLite 3.35+ drops a column in place.
    op.drop_column("collector_meters", "command_counter")
