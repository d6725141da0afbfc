"""Collector: meters that can be disabled, identities, every state explained, moves.

Revision ID: collector_0006_registry
Revises: collector_0005

* ``collector_meters``: ``enabled`` (a disabled meter is kept and not polled), ``identity``
  (the serial number the meter must answer with), ``last_detail`` (the last reading's TOU,
  voltage and current, as JSON);
* ``collector_dtus``: ``state_reason``, ``state_since``, ``next_attempt_at`` (why a DTU is
  offline, since when, and when the collector tries it again);
* ``collector_meter_states``: each condition a meter is in (link, identity, clock...);
* ``collector_meter_moves``: meters moved between places, with their final readings.

Columns are only added (no table copy on SQLite: collector_meters is referenced).
"""

import sqlalchemy as sa
from alembic import op
from prepaid_common.migration_ops import ts

revision = "collector_0006_registry"
down_revision = "collector_0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "collector_meters",
        sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true()),
    )
    op.add_column("collector_meters", sa.Column("identity", sa.String(64), nullable=True))
    op.add_column("collector_meters", sa.Column("last_detail", sa.Text(), nullable=True))
    op.add_column("collector_dtus", sa.Column("state_reason", sa.String(400), nullable=True))
    op.add_column("collector_dtus", ts("state_since", nullable=True))
    op.add_column("collector_dtus", ts("next_attempt_at", nullable=True))
    op.create_table(
        "collector_meter_states",
        sa.Column("meter_id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("detail", sa.String(400), nullable=False),
        ts("since"),
        sa.Column("count", sa.Integer(), nullable=False),
        ts("until", nullable=True),
    )
    op.create_table(
        "collector_meter_moves",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("meter_id", sa.String(64), nullable=False),
        sa.Column("from_dtu_id", sa.String(64), nullable=False),
        sa.Column("from_address", sa.String(12), nullable=False),
        sa.Column("from_profile", sa.String(64), nullable=False),
        sa.Column("to_dtu_id", sa.String(64), nullable=False),
        sa.Column("to_address", sa.String(12), nullable=False),
        sa.Column("to_profile", sa.String(64), nullable=False),
        sa.Column("final_kwh", sa.BigInteger(), nullable=True),
        ts("final_read_at", nullable=True),
        sa.Column("reason", sa.String(400), nullable=False),
        ts("at"),
    )
    op.create_index("ix_collector_meter_moves_meter", "collector_meter_moves", ["meter_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_collector_meter_moves_meter", table_name="collector_meter_moves")
    op.drop_table("collector_meter_moves")
    op.drop_table("collector_meter_states")
    for column in ("next_attempt_at", "state_since", "state_reason"):
        op.drop_column("collector_dtus", column)
    for column in ("last_detail", "identity", "enabled"):
        op.drop_column("collector_meters", column)
