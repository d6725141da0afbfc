"""Control's Prometheus metrics (served by every service's ``/metrics``)."""

from __future__ import annotations

from typing import get_args

from prepaid_common.contracts import CommandAction
from prometheus_client import Counter, Histogram

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
COMMAND_SECONDS = Histogram(
    "prepaid_control_command_seconds",
    "From a command being logged to its final status, by action",
    ["action"],
    buckets=(0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0),
)

# Created at 0 for every action, so that panels and alerts see 0, not no data.
for _action in get_args(CommandAction):
    RELAY_REISSUES.labels(_action)
    COMMAND_SECONDS.labels(_action)
