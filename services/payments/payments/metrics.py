"""The payments service's own metrics."""

from __future__ import annotations

from prometheus_client import Counter

NOTIFICATIONS = Counter(
    "prepaid_payments_notifications",
    "Provider notifications by outcome: credited, duplicate, flagged, ignored, refused",
    ["provider", "outcome"],
)
