"""Control: the power limit (kW) a ``power_limit`` command sets.

Revision ID: control_0006
Revises: control_0005

Kept beside the command, as the alarm levels are: each attempt seals it afresh.
"""

import sqlalchemy as sa
from alembic import op

revision = "control_0006"
down_revision = "control_0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("control_commands") as batch:
        # Hundredths of a kW, as ScaledDecimal(2) stores it.
        batch.add_column(sa.Column("power_limit_kw", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("control_commands") as batch:
        batch.drop_column("power_limit_kw")
