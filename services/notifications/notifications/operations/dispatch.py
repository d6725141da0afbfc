"""The dispatcher: sends the messages whose time has come, one claimed at a time, and
settles each with the provider's answer (sent; retry later with back-off; failed)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from prepaid_common.contracts import utcnow
from prepaid_common.outbox import ServiceStore

from notifications.channels import ChannelFailure, Sender
from notifications.domain.delivery import Backoff
from notifications.domain.kinds import Kind
from notifications.domain.texts import Rendered
from notifications.metrics import MESSAGES
from notifications.store import messages as message_store

log = logging.getLogger(__name__)

# How long a claimed message is another replica's: longer than any provider's timeout.
LEASE = timedelta(minutes=2)


async def send_due(
    store: ServiceStore, senders: Mapping[str, Sender], backoff: Backoff, *, limit: int = 50
) -> int:
    """Send the due messages; return how many were attempted."""
    now = utcnow()
    async with store.sessionmaker() as session:
        due = await message_store.due_messages(session, now=now, limit=limit)
    attempted = 0
    for row in due:
        async with store.unit_of_work() as uow:
            taken = await message_store.claim(
                uow.session, row.id, seen_at=row.next_attempt_at, lease=LEASE, now=now
            )
        if not taken:
            continue
        attempted += 1
        await _attempt(store, senders, backoff, row)
    return attempted


async def _attempt(
    store: ServiceStore, senders: Mapping[str, Sender], backoff: Backoff, row: Any
) -> None:
    message_id: str = row.id
    channel: str = row.channel
    attempts = int(row.attempts) + 1
    sender = senders.get(channel)
    now = utcnow()
    if sender is None:
        # The channel was turned off after the message was written: it will not go.
        async with store.unit_of_work() as uow:
            await message_store.settle(
                uow.session,
                message_id,
                status="failed",
                attempts=attempts,
                provider_answer=f"channel {channel} is off",
            )
        return
    rendered = Rendered(
        kind=Kind(row.kind),
        title=row.title,
        text=row.text,
        params=tuple(message_store.params_of(row.params).items()),
    )
    try:
        answer = await sender.send(row.address, rendered)
    except ChannelFailure as failure:
        delay = backoff.delay(attempts) if failure.retryable else None
        outcome = "retry" if delay is not None else "failed"
        MESSAGES.labels(channel, sender.provider, outcome).inc()
        log.warning(
            "notification not sent",
            extra={
                "message_id": message_id,
                "channel": channel,
                "provider": sender.provider,
                "attempts": attempts,
                "outcome": outcome,
                "answer": failure.answer,
            },
        )
        async with store.unit_of_work() as uow:
            await message_store.settle(
                uow.session,
                message_id,
                status="pending" if delay is not None else "failed",
                attempts=attempts,
                next_attempt_at=now + delay if delay is not None else now,
                provider_answer=f"{sender.provider}: {failure.answer}",
            )
        return
    MESSAGES.labels(channel, sender.provider, "sent").inc()
    async with store.unit_of_work() as uow:
        await message_store.settle(
            uow.session,
            message_id,
            status="sent",
            attempts=attempts,
            sent_at=utcnow(),
            provider_answer=f"{sender.provider}: {answer}",
        )
