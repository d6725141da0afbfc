"""The notifications service's own metrics."""

from __future__ import annotations

from prometheus_client import Counter

FACTS = Counter(
    "prepaid_notifications_facts",
    "Facts heard, by kind and outcome: told, or repeated (a crossing already told)",
    ["kind", "outcome"],
)
MESSAGES = Counter(
    "prepaid_notifications_messages",
    "Send attempts by channel, provider and outcome: sent, retry, failed",
    ["channel", "provider", "outcome"],
)
WEBHOOKS = Counter(
    "prepaid_notifications_webhook_deliveries",
    "Webhook delivery attempts by outcome: delivered, retry, failed",
    ["outcome"],
)

for _outcome in ("delivered", "retry", "failed"):
    WEBHOOKS.labels(_outcome)
