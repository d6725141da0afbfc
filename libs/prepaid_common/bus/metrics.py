"""The bus's Prometheus metrics: dead letters and consumers waiting out an outage."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

DEAD_LETTERED = Counter(
    "prepaid_bus_dead_lettered_total",
    "Messages this process sent to the dead-letter queue, by queue and reason",
    ["queue", "reason"],
)

DEAD_LETTER_QUEUE = Gauge(
    "prepaid_dead_letter_queue_messages",
    "Messages waiting in the dead-letter queue at the last look (every 30 s, and on each use)",
    ["queue"],
)

CONSUMER_WAITING = Gauge(
    "prepaid_bus_consumer_waiting",
    "1 while a consumer holds a message and waits for a dependency to come back",
    ["queue"],
)

# Why a message goes to the dead-letter queue (RabbitBus and InProcessBus).
DEAD_LETTER_REASONS = ("failed", "unparseable")


def count_consumer_from_zero(queue: str) -> None:
    """Create a consumer's series at 0, so its panels and rules see 0 before any event."""
    CONSUMER_WAITING.labels(queue).set(0)
    for reason in DEAD_LETTER_REASONS:
        DEAD_LETTERED.labels(queue, reason)
