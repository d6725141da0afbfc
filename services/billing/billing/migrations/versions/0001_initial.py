"""Billing: tariffs, accounts, meter bindings, ledger, readings, usage, holds, sheds.

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
TABLES = (
    "billing_site_policy",
    "billing_anomalies",
    "billing_supply_events",
    "billing_sheds",
    "billing_holds",
    "billing_daily_usage",
    "billing_readings",
    "billing_entries",
    "billing_transactions",
    "billing_meter_history",
    "billing_meters",
    "billing_account_groups",
    "billing_accounts",
    "billing_tariff_versions",
    "billing_tariffs",
)


def upgrade() -> None:
    create_plumbing_tables("billing")
    op.create_table(
        "billing_tariffs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        ts("created_at"),
    )
    op.create_table(
        "billing_tariff_versions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tariff_id", sa.String(64), sa.ForeignKey("billing_tariffs.id"), nullable=False),
        ts("effective_from"),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        ts("created_at"),
    )
    op.create_index(
        "ix_billing_tariff_versions_tariff",
        "billing_tariff_versions",
        ["tariff_id", "effective_from"],
    )
    op.create_table(
        "billing_accounts",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("tariff_id", sa.String(64), sa.ForeignKey("billing_tariffs.id"), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("trip_line", sa.BigInteger(), nullable=False),
        sa.Column("warning_line", sa.BigInteger(), nullable=False),
        sa.Column("overdraft_limit", sa.BigInteger(), nullable=False),
        sa.Column("balance_cap", sa.BigInteger()),
        sa.Column("debt_share", sa.BigInteger(), nullable=False),
        sa.Column("debt_daily", sa.BigInteger(), nullable=False),
        sa.Column("protected", sa.Boolean(), nullable=False),
        sa.Column("warned", sa.Boolean(), nullable=False),
        ts("created_at"),
    )
    op.create_table(
        "billing_account_groups",
        sa.Column(
            "account_id", sa.String(64), sa.ForeignKey("billing_accounts.id"), primary_key=True
        ),
        sa.Column("group_name", sa.String(100), primary_key=True),
    )
    op.create_index("ix_billing_account_groups_group", "billing_account_groups", ["group_name"])
    op.create_table(
        "billing_meters",
        sa.Column("meter_id", sa.String(64), primary_key=True),
        sa.Column(
            "account_id", sa.String(64), sa.ForeignKey("billing_accounts.id"), nullable=False
        ),
        sa.Column("tariff_id", sa.String(64), sa.ForeignKey("billing_tariffs.id")),
        sa.Column("multiplier", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.JSON()),
        sa.Column("supply", sa.String(8), nullable=False),
        ts("bound_at"),
    )
    op.create_index("ix_billing_meters_account", "billing_meters", ["account_id"])
    op.create_table(
        "billing_meter_history",
        sa.Column("id", SERIAL, primary_key=True, autoincrement=True),
        sa.Column("meter_id", sa.String(64), nullable=False),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("final_kwh", sa.BigInteger()),
        sa.Column("detail", sa.String(400), nullable=False),
        sa.Column("operator", sa.String(64), nullable=False),
        ts("at"),
    )
    op.create_index("ix_billing_meter_history_meter", "billing_meter_history", ["meter_id", "at"])
    op.create_table(
        "billing_transactions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("operation_key", sa.String(200), nullable=False, unique=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("memo", sa.String(400), nullable=False),
        sa.Column("operator", sa.String(64), nullable=False),
        sa.Column("reverses", sa.String(36)),
        ts("created_at"),
    )
    op.create_index(
        "ix_billing_transactions_account", "billing_transactions", ["account_id", "created_at"]
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
        "billing_daily_usage",
        sa.Column("meter_id", sa.String(64), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("metered_kwh", sa.BigInteger(), nullable=False),
        sa.Column("billed_kwh", sa.BigInteger(), nullable=False),
        sa.Column("cost", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("meter_id", "day"),
    )
    op.create_index("ix_billing_daily_usage_account", "billing_daily_usage", ["account_id", "day"])
    op.create_table(
        "billing_holds",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("scope", sa.String(8), nullable=False),
        sa.Column("target", sa.String(100), nullable=False),
        ts("until", nullable=True),
        sa.Column("reason", sa.String(400), nullable=False),
        sa.Column("operator", sa.String(64), nullable=False),
        ts("created_at"),
        ts("released_at", nullable=True),
    )
    op.create_table(
        "billing_sheds",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("group_name", sa.String(100), nullable=False),
        sa.Column("reason", sa.String(400), nullable=False),
        sa.Column("operator", sa.String(64), nullable=False),
        ts("started_at"),
        ts("ended_at", nullable=True),
    )
    op.create_table(
        "billing_supply_events",
        sa.Column("id", SERIAL, primary_key=True, autoincrement=True),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("meter_id", sa.String(64), nullable=False),
        sa.Column("action", sa.String(8), nullable=False),
        sa.Column("reason", sa.String(400), nullable=False),
        ts("at"),
    )
    op.create_index("ix_billing_supply_events_meter", "billing_supply_events", ["meter_id", "at"])
    op.create_table(
        "billing_anomalies",
        sa.Column("id", SERIAL, primary_key=True, autoincrement=True),
        sa.Column("meter_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("detail", sa.String(400), nullable=False),
        ts("at"),
    )
    op.create_index("ix_billing_anomalies_meter", "billing_anomalies", ["meter_id", "at"])
    op.create_table(
        "billing_site_policy",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("policy", sa.JSON(), nullable=False),
        ts("updated_at"),
    )


def downgrade() -> None:
    for table in TABLES:
        op.drop_table(table)
    drop_plumbing_tables("billing")
