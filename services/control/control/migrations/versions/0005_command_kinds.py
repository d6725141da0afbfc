"""Control: every command kind (time sets and alarm levels), and the levels a command sets.

Revision ID: control_0005
Revises: control_0004

``action`` grows to hold ``alarm_thresholds``; an ``alarm_thresholds`` command keeps the two
levels it sets (they are sealed into each attempt's envelope).
"""

import sqlalchemy as sa
from alembic import op

revision = "control_0005"
down_revision = "control_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("control_commands") as batch:
        batch.alter_column("action", existing_type=sa.String(8), type_=sa.String(20))
        batch.add_column(sa.Column("alarm_first", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("alarm_second", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("control_commands") as batch:
        batch.drop_column("alarm_second")
        batch.drop_column("alarm_first")
        batch.alter_column("action", existing_type=sa.String(20), type_=sa.String(8))
