"""Billing: balance projection; readings partitioned by month on PostgreSQL.

Revision ID: billing_0002
Revises: billing_0001

* ``billing_balances``: the balance of every ledger account, filled here from the entries
  and from now on kept by the posting function in the same transaction as each posting.
* ``billing_readings`` on PostgreSQL becomes a table partitioned by month of ``read_at``
  with a DEFAULT partition (the old table is renamed, its rows copied, then dropped).
  SQLite keeps the plain table.
"""

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op
from billing import partitions

revision = "billing_0002"
down_revision = "billing_0001"
branch_labels = None
depends_on = None

# Months of existing readings this recent get their own partition; older rows go to the
# default partition, where the sweep's retention removes them.
BACKFILL_DAYS = 400


def upgrade() -> None:
    op.create_table(
        "billing_balances",
        sa.Column("ledger_account", sa.String(100), primary_key=True),
        sa.Column("balance", sa.BigInteger(), nullable=False),
    )
    op.execute(
        "INSERT INTO billing_balances (ledger_account, balance) "
        "SELECT ledger_account, SUM(amount) FROM billing_entries GROUP BY ledger_account"
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    connection = op.get_bind()
    op.execute("ALTER TABLE billing_readings RENAME TO billing_readings_old")
    op.execute("ALTER INDEX billing_readings_pkey RENAME TO billing_readings_old_pkey")
    op.execute(
        "CREATE TABLE billing_readings ("
        " meter_id VARCHAR(64) NOT NULL,"
        " read_at TIMESTAMP WITH TIME ZONE NOT NULL,"
        " energy_kwh BIGINT NOT NULL,"
        " received_at TIMESTAMP WITH TIME ZONE NOT NULL,"
        " CONSTRAINT billing_readings_pkey PRIMARY KEY (meter_id, read_at)"
        ") PARTITION BY RANGE (read_at)"
    )
    op.execute(f"CREATE TABLE {partitions.DEFAULT_PARTITION} PARTITION OF billing_readings DEFAULT")
    now = datetime.now(UTC)
    months = {
        partitions.month_start(row[0])
        for row in connection.execute(
            sa.text(
                "SELECT DISTINCT date_trunc('month', read_at AT TIME ZONE 'UTC') "
                "AT TIME ZONE 'UTC' FROM billing_readings_old "
                "WHERE read_at >= :since AND read_at < :until"
            ),
            {"since": now - timedelta(days=BACKFILL_DAYS), "until": now + timedelta(days=62)},
        )
    }
    start = partitions.month_start(now)
    for _ in range(partitions.MONTHS_AHEAD + 1):
        months.add(start)
        start = partitions.next_month(start)
    for month in sorted(months):
        partitions.ensure_month(connection, month)
    op.execute("INSERT INTO billing_readings SELECT * FROM billing_readings_old")
    op.execute("DROP TABLE billing_readings_old")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE billing_readings RENAME TO billing_readings_partitioned")
        op.execute("ALTER INDEX billing_readings_pkey RENAME TO billing_readings_partitioned_pkey")
        op.create_table(
            "billing_readings",
            sa.Column("meter_id", sa.String(64), nullable=False),
            sa.Column("read_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("energy_kwh", sa.BigInteger(), nullable=False),
            sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("meter_id", "read_at"),
        )
        op.execute("INSERT INTO billing_readings SELECT * FROM billing_readings_partitioned")
        op.execute("DROP TABLE billing_readings_partitioned")
    op.drop_table("billing_balances")
