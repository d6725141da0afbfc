"""Billing: the site office's tables.

Revision ID: billing_0005_site
Revises: billing_0004

* ``billing_account_profiles``: the tenant and the premises (building, floor, room, area);
* ``billing_account_closures``: move-outs and transfers, with their answers for replays;
* ``billing_cashier_shifts``: cashiers' shift closes;
* ``billing_postpaid_terms``: due day, grace, late fee and cut for postpaid accounts;
* ``billing_apportionment_rules`` and ``_runs``: common-area cost shared out by month.
"""

import sqlalchemy as sa
from alembic import op
from prepaid_common.migration_ops import ts

revision = "billing_0005_site"
down_revision = "billing_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "billing_account_profiles",
        sa.Column(
            "account_id", sa.String(64), sa.ForeignKey("billing_accounts.id"), primary_key=True
        ),
        sa.Column("tenant_name", sa.String(100)),
        sa.Column("phone", sa.String(24)),
        sa.Column("email", sa.String(255)),
        sa.Column("building", sa.String(100)),
        sa.Column("floor", sa.String(100)),
        sa.Column("room", sa.String(100)),
        sa.Column("area_m2", sa.BigInteger()),
    )
    op.create_index(
        "ix_billing_account_profiles_place",
        "billing_account_profiles",
        ["building", "floor", "room"],
    )
    op.create_table(
        "billing_account_closures",
        sa.Column(
            "account_id", sa.String(64), sa.ForeignKey("billing_accounts.id"), primary_key=True
        ),
        sa.Column("key", sa.String(100), nullable=False, unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("successor", sa.String(64)),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("operator", sa.String(64), nullable=False),
        ts("closed_at"),
    )
    op.create_table(
        "billing_cashier_shifts",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("cashier", sa.String(64), nullable=False),
        ts("opened_at", nullable=True),
        ts("closed_at"),
        sa.Column("top_ups", sa.Integer(), nullable=False),
        sa.Column("cash_in", sa.BigInteger(), nullable=False),
        sa.Column("refunds", sa.Integer(), nullable=False),
        sa.Column("cash_out", sa.BigInteger(), nullable=False),
        sa.Column("counted_cash", sa.BigInteger(), nullable=False),
        sa.Column("note", sa.String(400), nullable=False),
    )
    op.create_index(
        "ix_billing_cashier_shifts_cashier", "billing_cashier_shifts", ["cashier", "closed_at"]
    )
    op.create_table(
        "billing_postpaid_terms",
        sa.Column(
            "account_id", sa.String(64), sa.ForeignKey("billing_accounts.id"), primary_key=True
        ),
        sa.Column("due_day", sa.Integer(), nullable=False),
        sa.Column("grace_days", sa.Integer(), nullable=False),
        sa.Column("late_fee_rate", sa.BigInteger(), nullable=False),
        sa.Column("cut_when_overdue", sa.Boolean(), nullable=False),
    )
    op.create_table(
        "billing_apportionment_rules",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column(
            "common_account_id",
            sa.String(64),
            sa.ForeignKey("billing_accounts.id"),
            nullable=False,
        ),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("members", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        ts("created_at"),
    )
    op.create_table(
        "billing_apportionment_runs",
        sa.Column(
            "rule_id",
            sa.String(64),
            sa.ForeignKey("billing_apportionment_rules.id"),
            primary_key=True,
        ),
        sa.Column("month", sa.String(7), primary_key=True),
        sa.Column("result", sa.JSON(), nullable=False),
        ts("posted_at"),
    )


def downgrade() -> None:
    op.drop_table("billing_apportionment_runs")
    op.drop_table("billing_apportionment_rules")
    op.drop_table("billing_postpaid_terms")
    op.drop_index("ix_billing_cashier_shifts_cashier", "billing_cashier_shifts")
    op.drop_table("billing_cashier_shifts")
    op.drop_table("billing_account_closures")
    op.drop_index("ix_billing_account_profiles_place", "billing_account_profiles")
    op.drop_table("billing_account_profiles")
