"""Control's Prometheus metrics (served by every service's ``/metrics``)."""

from __future__ import annotations

from prometheus_client import Counter

COMMANDS = Counter(
    "prepaid_control_commands_total",
    "Commands (relay and purchases) by action and final status",
    ["action", "status"],
)
