"""Billing: accounts, meter bindings, double-entry ledger, readings, anomalies.

Revision ID: billing_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from prepaid_common.migration_ops import create_plumbing_tables, drop_plumbing_tables, ts

revision = "billing_0001"
down_revision = None
branch_labels = None
depends_on = None

SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    create_plumbing_tables("billing")
    op.create_table(
        "billing_accounts",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("price_per_kwh", sa.BigInteger(), nullable=False),
        sa.Column("trip_line", sa.BigInteger(), nullable=False),
        sa.Column("warning_line", sa.BigInteger(), nullable=False),
        sa.Column("supply", sa.String(8), nullable=False),
        ts("created_at"),
    )
    op.create_table(
        "billing_meters",
        sa.Column("meter_id", sa.String(64), primary_key=True),
        sa.Column(
            "account_id", sa.String(64), sa.ForeignKey("billing_accounts.id"), nullable=False
        ),
        sa.Column("start_kwh", sa.BigInteger()),
        sa.Column("last_kwh", sa.BigInteger()),
        ts("last_read_at", nullable=True),
        sa.Column("charged", sa.BigInteger(), nullable=False),
        ts("bound_at"),
    )
    op.create_index("ix_billing_meters_account", "billing_meters", ["account_id"])
    op.create_table(
        "billing_transactions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("operation_key", sa.String(200), nullable=False, unique=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("memo", sa.String(400), nullable=False),
        ts("created_at"),
    )
    op.create_table(
        "billing_entries",
        sa.Column("id", SERIAL, primary_key=True, autoincrement=True),
        sa.Column(
            "transaction_id",
            sa.String(36),
            sa.ForeignKey("billing_transactions.id"),
            nullable=False,
        ),
        sa.Column("ledger_account", sa.String(100), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_billing_entries_ledger", "billing_entries", ["ledger_account", "id"])
    op.create_table(
        "billing_readings",
        sa.Column("meter_id", sa.String(64), nullable=False),
        ts("read_at"),
        sa.Column("energy_kwh", sa.BigInteger(), nullable=False),
        ts("received_at"),
        sa.PrimaryKeyConstraint("meter_id", "read_at"),
    )
    op.create_table(
        "billing_anomalies",
        sa.Column("id", SERIAL, primary_key=True, autoincrement=True),
        sa.Column("meter_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("detail", sa.String(400), nullable=False),
        ts("at"),
    )
    op.create_index("ix_billing_anomalies_meter", "billing_anomalies", ["meter_id", "at"])


def downgrade() -> None:
    for table in (
        "billing_anomalies",
        "billing_readings",
        "billing_entries",
        "billing_transactions",
        "billing_meters",
        "billing_accounts",
    ):
        op.drop_table(table)
    drop_plumbing_tables("billing")
