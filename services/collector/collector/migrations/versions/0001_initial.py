"""Collector: DTUs, meters, pending commands and plumbing.

Revision ID: collector_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from prepaid_common.migration_ops import create_plumbing_tables, drop_plumbing_tables, ts

revision = "collector_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_plumbing_tables("collector")
    op.create_table(
        "collector_dtus",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("online", sa.Boolean(), nullable=False),
        ts("last_seen_at", nullable=True),
    )
    op.create_table(
        "collector_meters",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("dtu_id", sa.String(64), sa.ForeignKey("collector_dtus.id"), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("profile", sa.String(64), nullable=False),
        sa.Column("online", sa.Boolean(), nullable=False),
        sa.Column("relay", sa.String(8), nullable=True),
        sa.Column("last_energy_kwh", sa.BigInteger(), nullable=True),
        sa.Column("last_power_kw", sa.BigInteger(), nullable=True),
        ts("last_read_at", nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.UniqueConstraint("dtu_id", "unit_id", name="uq_collector_meters_dtu_unit"),
    )
    op.create_table(
        "collector_pending_commands",
        sa.Column("command_id", sa.String(64), primary_key=True),
        sa.Column("meter_id", sa.String(64), nullable=False),
        sa.Column("action", sa.String(8), nullable=False),
        sa.Column("envelope", sa.Text(), nullable=False),
        ts("expires_at"),
        ts("received_at"),
    )
    op.create_index(
        "ix_collector_pending_commands_meter",
        "collector_pending_commands",
        ["meter_id", "received_at"],
    )


def downgrade() -> None:
    op.drop_table("collector_pending_commands")
    op.drop_table("collector_meters")
    op.drop_table("collector_dtus")
    drop_plumbing_tables("collector")
