"""One bus interface, two adapters: RabbitMQ (cluster) and in-process (standalone)."""

from prepaid_common.bus.base import (
    BatchHandler,
    BatchSubscription,
    Handler,
    MessageBus,
    PublishFailed,
    Subscription,
    Weigh,
    topic_matches,
)
from prepaid_common.bus.memory import InProcessBus

__all__ = [
    "BatchHandler",
    "BatchSubscription",
    "Handler",
    "InProcessBus",
    "MessageBus",
    "PublishFailed",
    "Subscription",
    "Weigh",
    "make_bus",
    "topic_matches",
]


def make_bus(amqp_url: str, *, prefix: str) -> MessageBus:
    """Return the RabbitMQ bus when a URL is configured, else the in-process one."""
    if amqp_url:
        from prepaid_common.bus.rabbit import RabbitBus

        return RabbitBus(amqp_url, prefix=prefix)
    return InProcessBus()
