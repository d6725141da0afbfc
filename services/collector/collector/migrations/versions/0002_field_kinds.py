"""Collector: DTU kinds (gateway, RTU over TCP, dial-in), meter addresses, live replicas.

Revision ID: collector_0002
Revises: collector_0001

Written by hand for both backends: SQLite cannot alter a column or a constraint in place,
so those changes go through batch operations (a table copy there, plain ALTERs on PostgreSQL).
collector_dtus only gains columns: copying it on SQLite would drop a table collector_meters
references, which fails once meters exist (the foreign_keys pragma cannot be turned off
inside the migration's transaction). So a DTU that dials in keeps host "" and port 0.
"""

import sqlalchemy as sa
from alembic import op
from prepaid_common.migration_ops import ts

revision = "collector_0002"
down_revision = "collector_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("collector_dtus", sa.Column("registration", sa.String(80), nullable=True))
    op.add_column(
        "collector_dtus",
        sa.Column("registration_mode", sa.String(8), nullable=False, server_default="once"),
    )
    op.add_column(
        "collector_dtus",
        sa.Column("heartbeat", sa.String(80), nullable=False, server_default="HB"),
    )
    op.add_column(
        "collector_dtus",
        sa.Column("link_timeout_seconds", sa.Float(), nullable=False, server_default="180"),
    )
    op.create_index(
        "ix_collector_dtus_registration", "collector_dtus", ["registration"], unique=True
    )
    with op.batch_alter_table("collector_meters") as batch:
        batch.add_column(sa.Column("address", sa.String(12), nullable=True))
    op.execute("UPDATE collector_meters SET address = CAST(unit_id AS VARCHAR(12))")
    with op.batch_alter_table("collector_meters") as batch:
        batch.alter_column("address", existing_type=sa.String(12), nullable=False)
        batch.alter_column("unit_id", existing_type=sa.Integer(), nullable=True)
        batch.drop_constraint("uq_collector_meters_dtu_unit", type_="unique")
        # One address per bus, whichever protocol: two meters answering it garble each other.
        batch.create_unique_constraint("uq_collector_meters_dtu_address", ["dtu_id", "address"])
    op.create_table(
        "collector_replicas",
        sa.Column("instance", sa.String(64), primary_key=True),
        ts("lease_until"),
        ts("started_at"),
    )
    # Requests any replica may take (read all now): each replica acts on those it has not seen.
    op.create_table(
        "collector_read_requests",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("meter_id", sa.String(64), nullable=True),
        ts("requested_at"),
    )


def downgrade() -> None:
    op.drop_table("collector_read_requests")
    op.drop_table("collector_replicas")
    op.execute("DELETE FROM collector_meters WHERE unit_id IS NULL")
    with op.batch_alter_table("collector_meters") as batch:
        batch.drop_constraint("uq_collector_meters_dtu_address", type_="unique")
        batch.create_unique_constraint("uq_collector_meters_dtu_unit", ["dtu_id", "unit_id"])
        batch.alter_column("unit_id", existing_type=sa.Integer(), nullable=False)
        batch.drop_column("address")
    op.drop_index("ix_collector_dtus_registration", table_name="collector_dtus")
    for column in ("link_timeout_seconds", "heartbeat", "registration_mode", "registration"):
        # SQLite 3.35+ drops a column in place; no copy of the referenced table.
        op.drop_column("collector_dtus", column)
