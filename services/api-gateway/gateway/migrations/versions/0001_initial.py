"""Gateway: users, user accounts, audit log and plumbing.

Revision ID: gateway_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from prepaid_common.migration_ops import create_plumbing_tables, drop_plumbing_tables, ts

revision = "gateway_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_plumbing_tables("gateway")
    op.create_table(
        "gateway_users",
        sa.Column("username", sa.String(64), primary_key=True),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        ts("created_at"),
    )
    op.create_table(
        "gateway_user_accounts",
        sa.Column(
            "username", sa.String(64), sa.ForeignKey("gateway_users.username"), primary_key=True
        ),
        sa.Column("account_id", sa.String(64), primary_key=True),
    )
    op.create_table(
        "gateway_audit",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        ts("at"),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("gateway_audit")
    op.drop_table("gateway_user_accounts")
    op.drop_table("gateway_users")
    drop_plumbing_tables("gateway")
