"""The billing service's tables."""

from __future__ import annotations

from prepaid_common.db import Energy, Money, ScaledDecimal, UtcDateTime
from prepaid_common.service import service_metadata
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
    text,
)

metadata, plumbing = service_metadata("billing")

SERIAL = BigInteger().with_variant(Integer(), "sqlite")

tariffs = Table(
    "billing_tariffs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
)

tariff_versions = Table(
    "billing_tariff_versions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tariff_id", String(64), ForeignKey("billing_tariffs.id"), nullable=False),
    Column("effective_from", UtcDateTime(), nullable=False),
    # A TariffDefinition as JSON (decimals as strings).
    Column("definition", JSON, nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Index("ix_billing_tariff_versions_tariff", "tariff_id", "effective_from"),
)

accounts = Table(
    "billing_accounts",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("tariff_id", String(64), ForeignKey("billing_tariffs.id"), nullable=False),
    Column("mode", String(16), nullable=False),  # prepaid | postpaid
    Column("trip_line", Money(), nullable=False),
    Column("warning_line", Money(), nullable=False),
    # Emergency credit: supply continues down to trip_line - overdraft_limit.
    Column("overdraft_limit", Money(), nullable=False),
    # Anti-hoarding: the most an account may hold; None for no cap.
    Column("balance_cap", Money()),
    # Debt recovery: a share of each top-up and/or a daily amount go to arrears.
    Column("debt_share", ScaledDecimal(4), nullable=False),
    Column("debt_daily", Money(), nullable=False),
    # Spared by group load shedding (hospitals, server rooms, cold stores).
    Column("protected", Boolean, nullable=False),
    # Friendly hours' debt ceiling: inside them supply stays on down to the cut line less this.
    Column("friendly_debt_limit", Money(), nullable=False),
    Column("warned", Boolean, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
)

account_groups = Table(
    "billing_account_groups",
    metadata,
    Column("account_id", String(64), ForeignKey("billing_accounts.id"), primary_key=True),
    # "building:A", "floor:3", "class:restaurant": free-form, operators decide.
    Column("group_name", String(100), primary_key=True),
    Index("ix_billing_account_groups_group", "group_name"),
)

meters = Table(
    "billing_meters",
    metadata,
    Column("meter_id", String(64), primary_key=True),
    Column("account_id", String(64), ForeignKey("billing_accounts.id"), nullable=False),
    # A per-meter tariff overriding the account's.
    Column("tariff_id", String(64), ForeignKey("billing_tariffs.id")),
    # CT x PT for meters wired to the secondary side.
    Column("multiplier", ScaledDecimal(4), nullable=False),
    # The rating position (see billing.domain.rating), as JSON with decimal strings.
    Column("position", JSON),
    Column("supply", String(8), nullable=False),
    Column("bound_at", UtcDateTime(), nullable=False),
    Index("ix_billing_meters_account", "account_id"),
)

meter_history = Table(
    "billing_meter_history",
    metadata,
    Column("id", SERIAL, primary_key=True),
    Column("meter_id", String(64), nullable=False),
    Column("account_id", String(64), nullable=False),
    Column("event", String(32), nullable=False),  # bound | swapped_out | swapped_in | unbound
    Column("final_kwh", Energy()),
    Column("detail", String(400), nullable=False),
    Column("operator", String(64), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Index("ix_billing_meter_history_meter", "meter_id", "at"),
)

transactions = Table(
    "billing_transactions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("operation_key", String(200), nullable=False, unique=True),
    Column("kind", String(32), nullable=False),
    Column("account_id", String(64), nullable=False),
    Column("memo", String(400), nullable=False),
    Column("operator", String(64), nullable=False),
    Column("reverses", String(36)),
    Column("created_at", UtcDateTime(), nullable=False),
    Index("ix_billing_transactions_account", "account_id", "created_at"),
)

entries = Table(
    "billing_entries",
    metadata,
    Column("id", SERIAL, primary_key=True),
    Column("transaction_id", String(36), ForeignKey("billing_transactions.id"), nullable=False),
    Column("ledger_account", String(100), nullable=False),
    Column("amount", Money(), nullable=False),
    Index("ix_billing_entries_ledger", "ledger_account", "id"),
)

# The balance of every ledger account, kept in the same transaction as each posting by the one
# posting function (billing.store.ledger.post_many): a projection of SUM(entries), never edited
# otherwise, so that a supply decision reads one row instead of summing the ledger.
balances = Table(
    "billing_balances",
    metadata,
    Column("ledger_account", String(100), primary_key=True),
    Column("balance", Money(), nullable=False),
)

# On PostgreSQL partitioned by month on read_at (migration billing_0002, partitions kept by
# the sweep: billing.partitions); on SQLite a plain table.
readings = Table(
    "billing_readings",
    metadata,
    Column("meter_id", String(64), primary_key=True),
    Column("read_at", UtcDateTime(), primary_key=True),
    Column("energy_kwh", Energy(), nullable=False),
    Column("received_at", UtcDateTime(), nullable=False),
)

daily_usage = Table(
    "billing_daily_usage",
    metadata,
    Column("meter_id", String(64), primary_key=True),
    Column("day", String(10), primary_key=True),  # local date, YYYY-MM-DD
    Column("account_id", String(64), nullable=False),
    Column("metered_kwh", ScaledDecimal(6), nullable=False),
    Column("billed_kwh", ScaledDecimal(6), nullable=False),
    Column("cost", Money(), nullable=False),
    Index("ix_billing_daily_usage_account", "account_id", "day"),
)

holds = Table(
    "billing_holds",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("scope", String(8), nullable=False),  # meter | group | global
    Column("target", String(100), nullable=False),
    Column("until", UtcDateTime()),
    Column("reason", String(400), nullable=False),
    Column("operator", String(64), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("released_at", UtcDateTime()),
)

sheds = Table(
    "billing_sheds",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("group_name", String(100), nullable=False),
    Column("reason", String(400), nullable=False),
    Column("operator", String(64), nullable=False),
    Column("started_at", UtcDateTime(), nullable=False),
    Column("ended_at", UtcDateTime()),
)

supply_events = Table(
    "billing_supply_events",
    metadata,
    Column("id", SERIAL, primary_key=True),
    Column("account_id", String(64), nullable=False),
    Column("meter_id", String(64), nullable=False),
    Column("action", String(8), nullable=False),
    Column("reason", String(400), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Index("ix_billing_supply_events_meter", "meter_id", "at"),
)

anomalies = Table(
    "billing_anomalies",
    metadata,
    Column("id", SERIAL, primary_key=True),
    Column("meter_id", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("detail", String(400), nullable=False),
    # One row per episode: ``at`` when it began, ``last_at`` when it was last seen,
    # ``count`` how often; ``ended_at`` NULL while it lasts (see store/anomalies.py).
    Column("at", UtcDateTime(), nullable=False),
    Column("count", Integer, nullable=False, server_default="1"),
    Column("last_at", UtcDateTime(), nullable=False),
    Column("ended_at", UtcDateTime(), nullable=True),
    Index("ix_billing_anomalies_meter", "meter_id", "at"),
    Index(
        "ix_billing_anomalies_open",
        "meter_id",
        "kind",
        postgresql_where=text("ended_at IS NULL"),
        sqlite_where=text("ended_at IS NULL"),
    ),
)

# Local-prepaid meters (the meter keeps its own credit): the price the meter debits, the
# baseline the comparisons start from (the first reading after the flag or a re-sync), the
# latest read-back, and whether a mismatch was already reported (once per mismatch).
local_meters = Table(
    "billing_local_meters",
    metadata,
    Column("meter_id", String(64), primary_key=True),
    Column("price", ScaledDecimal(4)),  # yuan/kWh; None: the credit check allows no debit
    # Bumped by an operator's re-sync: purchases count again from a new baseline.
    Column("epoch", Integer, nullable=False),
    Column("baseline_count", Integer),
    Column("baseline_credit", Money()),
    Column("baseline_kwh", Energy()),
    Column("baseline_at", UtcDateTime()),
    Column("meter_count", Integer),
    Column("meter_credit", Money()),
    Column("meter_kwh", Energy()),
    Column("read_at", UtcDateTime()),
    Column("count_alarm", Boolean, nullable=False),
    Column("credit_alarm", Boolean, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
)

# Purchases pushed to local-prepaid meters, one per top-up and meter, each with the count
# the meter must take next: queued -> sent -> delivered, or refused by the meter.
purchases = Table(
    "billing_purchases",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("meter_id", String(64), nullable=False),
    Column("account_id", String(64), nullable=False),
    # The ledger transaction the money came from (payment:<id>).
    Column("operation_key", String(200), nullable=False),
    Column("amount", Money(), nullable=False),
    Column("epoch", Integer, nullable=False),
    Column("purchase_count", Integer),  # given out once the meter's own count is known
    Column("status", String(16), nullable=False),
    Column("request_id", String(36)),  # the push control is working on
    Column("pushes", Integer, nullable=False),
    Column("error", String(400), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("confirmed_at", UtcDateTime()),
    UniqueConstraint("meter_id", "operation_key", name="uq_billing_purchases_operation"),
    UniqueConstraint("meter_id", "epoch", "purchase_count", name="uq_billing_purchases_count"),
    Index("ix_billing_purchases_request", "request_id"),
)

site_policy = Table(
    "billing_site_policy",
    metadata,
    Column("id", Integer, primary_key=True),
    # A SitePolicy as JSON: friendly hours, holidays.
    Column("policy", JSON, nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

# Headroom under an account's cap held for counter cash about to be taken (one per receipt),
# so racing top-ups cannot all fit the same room; counted until credited or expired.
top_up_holds = Table(
    "billing_top_up_holds",
    metadata,
    Column("account_id", String(64), primary_key=True),
    Column("key", String(64), primary_key=True),
    Column("amount", Money(), nullable=False),
    Column("credited", Boolean, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
)

# --- the site office (migration billing_0005_site) ----------------------------------------
# Who the tenant is and where the premises are: what the front desk searches by.
account_profiles = Table(
    "billing_account_profiles",
    metadata,
    Column("account_id", String(64), ForeignKey("billing_accounts.id"), primary_key=True),
    Column("tenant_name", String(100)),
    Column("phone", String(24)),
    Column("email", String(255)),
    Column("building", String(100)),
    Column("floor", String(100)),
    Column("room", String(100)),
    Column("area_m2", ScaledDecimal(2)),
    Index("ix_billing_account_profiles_place", "building", "floor", "room"),
)

# An account closed by a move-out (销户) or a transfer (过户): one row, with what was done,
# so that the same operation key replays the first answer.
account_closures = Table(
    "billing_account_closures",
    metadata,
    Column("account_id", String(64), ForeignKey("billing_accounts.id"), primary_key=True),
    Column("key", String(100), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),  # move_out | transfer
    Column("successor", String(64)),
    Column("result", JSON, nullable=False),  # the AccountClosed answer
    Column("operator", String(64), nullable=False),
    Column("closed_at", UtcDateTime(), nullable=False),
)

# A cashier's shift closes (收费员日结): the cash the ledger says they took since their last
# close, against what they counted.
cashier_shifts = Table(
    "billing_cashier_shifts",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("cashier", String(64), nullable=False),
    Column("opened_at", UtcDateTime()),
    Column("closed_at", UtcDateTime(), nullable=False),
    Column("top_ups", Integer, nullable=False),
    Column("cash_in", Money(), nullable=False),
    Column("refunds", Integer, nullable=False),
    Column("cash_out", Money(), nullable=False),
    Column("counted_cash", Money(), nullable=False),
    Column("note", String(400), nullable=False),
    Index("ix_billing_cashier_shifts_cashier", "cashier", "closed_at"),
)

postpaid_terms = Table(
    "billing_postpaid_terms",
    metadata,
    Column("account_id", String(64), ForeignKey("billing_accounts.id"), primary_key=True),
    Column("due_day", Integer, nullable=False),
    Column("grace_days", Integer, nullable=False),
    Column("late_fee_rate", ScaledDecimal(6), nullable=False),
    Column("cut_when_overdue", Boolean, nullable=False),
)

apportionment_rules = Table(
    "billing_apportionment_rules",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("common_account_id", String(64), ForeignKey("billing_accounts.id"), nullable=False),
    Column("method", String(16), nullable=False),  # area | consumption
    Column("members", JSON, nullable=False),  # account ids, in the rule's order
    Column("created_by", String(64), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
)

apportionment_runs = Table(
    "billing_apportionment_runs",
    metadata,
    Column("rule_id", String(64), ForeignKey("billing_apportionment_rules.id"), primary_key=True),
    Column("month", String(7), primary_key=True),
    Column("result", JSON, nullable=False),  # the ApportionmentRun answer
    Column("posted_at", UtcDateTime(), nullable=False),
)
