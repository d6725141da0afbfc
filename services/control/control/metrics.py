"""Control's Prometheus metrics (served by every service's ``/metrics``)."""

from __future__ import annotations

from prometheus_client import Counter

COMMANDS = Counter(
    "prepaid_control_commands_total",
    "Commands (relay and purchases) by action and final status",
    ["action", "status"],
)

RELAY_REISSUES = Counter(
    "prepaid_control_relay_reissues_total",
    "Commands issued again because a meter's relay disagreed with its decided supply",
    ["action"],
)
RELAY_ALARMS = Counter(
    "prepaid_control_relay_alarms_total",
    "Meters whose relay disagreed with their decided supply past the alarm time",
)
