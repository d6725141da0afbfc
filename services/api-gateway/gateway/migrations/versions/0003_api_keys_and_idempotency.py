"""Gateway: API keys for programs (stored hashed) and the answers kept per Idempotency-Key.

Revision ID: gateway_0003
Revises: gateway_0002
"""

import sqlalchemy as sa
from alembic import op
from prepaid_common.migration_ops import ts

revision = "gateway_0003"
down_revision = "gateway_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gateway_api_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        ts("created_at"),
        ts("last_used_at", nullable=True),
        ts("revoked_at", nullable=True),
    )
    op.create_table(
        "gateway_idempotency",
        sa.Column("principal", sa.String(80), primary_key=True),
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        ts("created_at"),
    )
    op.create_index("ix_gateway_idempotency_created_at", "gateway_idempotency", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_gateway_idempotency_created_at", "gateway_idempotency")
    op.drop_table("gateway_idempotency")
    op.drop_table("gateway_api_keys")
