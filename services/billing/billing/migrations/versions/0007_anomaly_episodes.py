"""Billing: an anomaly is one row per episode, with a count.

Revision ID: billing_0007
Revises: billing_0006

* ``billing_anomalies.count``: how many times the condition was seen in the episode;
* ``billing_anomalies.last_at``: when it was last seen (``at`` is when the episode began);
* ``billing_anomalies.ended_at``: when the episode ended (a reading of the meter was accepted
  again); NULL while it lasts. Rows written before this revision were one per occurrence:
  each becomes an ended episode of one.
* a partial index on the open episodes, which every rated batch consults.
"""

import sqlalchemy as sa
from alembic import op

revision = "billing_0007"
down_revision = "billing_0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("billing_anomalies") as batch:
        batch.add_column(sa.Column("count", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("last_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE billing_anomalies SET last_at = at, ended_at = at")
    with op.batch_alter_table("billing_anomalies") as batch:
        batch.alter_column("last_at", existing_type=sa.DateTime(timezone=True), nullable=False)
    op.create_index(
        "ix_billing_anomalies_open",
        "billing_anomalies",
        ["meter_id", "kind"],
        postgresql_where=sa.text("ended_at IS NULL"),
        sqlite_where=sa.text("ended_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_billing_anomalies_open", table_name="billing_anomalies")
    with op.batch_alter_table("billing_anomalies") as batch:
        batch.drop_column("ended_at")
        batch.drop_column("last_at")
        batch.drop_column("count")
