"""Billing: one head again after the money edges and the site office were written side by side.

Revision ID: billing_0006
Revises: billing_0005_edges, billing_0005_site

Nothing changes in the schema; later revisions revise this one.
"""

revision = "billing_0006"
down_revision = ("billing_0005_edges", "billing_0005_site")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
