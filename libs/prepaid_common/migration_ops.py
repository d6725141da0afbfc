"""Alembic operations shared by every service's first revision."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


def ts(name: str, nullable: bool = False) -> sa.Column[object]:
    """Return a timezone-aware timestamp column."""
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def create_plumbing_tables(service: str) -> None:
    """Create ``<service>_outbox`` and ``<service>_inbox``."""
    op.create_table(
        f"{service}_outbox",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("message_id", sa.String(36), nullable=False, unique=True),
        sa.Column("envelope", sa.JSON(), nullable=False),
        ts("created_at"),
    )
    op.create_table(
        f"{service}_inbox",
        sa.Column("message_id", sa.String(36), primary_key=True),
        ts("handled_at"),
    )


def drop_plumbing_tables(service: str) -> None:
    """Drop what ``create_plumbing_tables`` made."""
    op.drop_table(f"{service}_inbox")
    op.drop_table(f"{service}_outbox")
