"""The dead-letter queue as operators see it: the messages in it, one page at a time."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel


class DeadLetterView(BaseModel):
    """One dead-lettered message: what it was, where it died and why."""

    message_id: str
    type: str
    # Where a replay publishes it again: the bus's exchange, with this routing key.
    routing_key: str
    # The queue it was dead-lettered from, and the broker's reason (rejected, delivery_limit).
    queue: str
    reason: str
    dead_lettered_at: datetime | None = None
    payload: dict[str, Any]


class DeadLetterPage(BaseModel):
    """The first messages of the dead-letter queue, and how many it holds in all."""

    total: int
    items: list[DeadLetterView]
