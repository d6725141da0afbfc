"""Billing's Prometheus metrics: what it rated, posted and decided, how late, and the site's
state as gauges."""

from __future__ import annotations

from decimal import Decimal

from prometheus_client import Counter, Gauge, Histogram

SUPPLY_DECISIONS = Counter(
    "prepaid_billing_supply_decisions_total", "Trip and close decisions", ["action"]
)

READINGS_RATED = Counter(
    "prepaid_billing_readings_rated_total", "Readings taken by billing, by verdict", ["verdict"]
)

TRANSACTIONS_POSTED = Counter(
    "prepaid_billing_transactions_total", "Ledger transactions posted, by kind", ["kind"]
)

LAG = Histogram(
    "prepaid_billing_lag_seconds",
    "From a reading being taken at the meter to billing receiving it for rating",
    buckets=(5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 21600.0),
)
ACCOUNTS_TRIPPED = Gauge(
    "prepaid_billing_accounts_tripped", "Accounts with at least one meter whose supply is off"
)
ACCOUNTS_WARNED = Gauge(
    "prepaid_billing_accounts_below_warning", "Accounts under their warning line (warned)"
)
METERS_BY_READING_AGE = Gauge(
    "prepaid_billing_meters_by_reading_age",
    "Bound meters by the age of their newest rated reading: under_5m, 5m_to_1h, 1h_to_1d, "
    "over_1d, never",
    ["age"],
)

# The age classes, each with its upper bound in seconds (None: no bound).
AGE_CLASSES: tuple[tuple[str, float | None], ...] = (
    ("under_5m", 300.0),
    ("5m_to_1h", 3600.0),
    ("1h_to_1d", 86400.0),
    ("over_1d", None),
)
for _age, _bound in AGE_CLASSES:
    METERS_BY_READING_AGE.labels(_age)
METERS_BY_READING_AGE.labels("never")


def age_class(age_seconds: float) -> str:
    """Return the class of a reading age (under_5m, 5m_to_1h, 1h_to_1d, over_1d)."""
    for name, bound in AGE_CLASSES:
        if bound is None or age_seconds < bound:
            return name
    return AGE_CLASSES[-1][0]


MONEY_IN = Counter(
    "prepaid_billing_money_in_yuan_total",
    "Yuan received into tenants' accounts (top-ups as posted to the ledger), by channel",
    ["channel"],
)
# The channels money arrives through (a top-up's method); any other counts as "other".
MONEY_IN_CHANNELS = ("cash", "wechat", "alipay")
for _channel in (*MONEY_IN_CHANNELS, "other"):
    MONEY_IN.labels(_channel)


def count_money_in(ledger_account: str, amount: Decimal) -> None:
    """Count a ledger line that takes money in: a clearing account (clearing:<method>) credited.

    The amount is exact in the ledger; the counter is a float, which is close enough to watch.
    """
    if not ledger_account.startswith("clearing:") or amount >= 0:
        return
    channel = ledger_account.removeprefix("clearing:")
    MONEY_IN.labels(channel if channel in MONEY_IN_CHANNELS else "other").inc(float(-amount))
