"""Administration of the dead-letter queue: list, replay, discard (admins; each action audited)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from prepaid_common.contracts.api.dead_letters import DeadLetterPage, DeadLetterView
from prepaid_common.dead_letters import DeadLetterQueue

from gateway.api.deps import AdminUser, AuditLog

router = APIRouter(prefix="/admin/dead-letters", tags=["admin"])


def _dead_letters(request: Request) -> DeadLetterQueue:
    queue: DeadLetterQueue = request.app.state.dead_letters
    return queue


DeadLetters = Annotated[DeadLetterQueue, Depends(_dead_letters)]


@router.get("")
async def list_dead_letters(
    principal: AdminUser,
    dead_letters: DeadLetters,
    limit: Annotated[int, Query(ge=1, le=500, description="How many to show")] = 100,
) -> DeadLetterPage:
    """The first dead-lettered messages, oldest first, and how many there are."""
    return await dead_letters.page(limit=limit)


@router.post("/{message_id}/replay")
async def replay_dead_letter(
    principal: AdminUser, dead_letters: DeadLetters, audit: AuditLog, message_id: str
) -> DeadLetterView:
    """Publish the message again with its routing key (consumers skip what they applied)."""
    replayed = await dead_letters.replay(message_id)
    await audit.record("dead_letter.replay", message_id, _described(replayed))
    return replayed


@router.delete("/{message_id}")
async def discard_dead_letter(
    principal: AdminUser, dead_letters: DeadLetters, audit: AuditLog, message_id: str
) -> DeadLetterView:
    """Remove the message from the dead-letter queue for good."""
    discarded = await dead_letters.discard(message_id)
    await audit.record("dead_letter.discard", message_id, _described(discarded))
    return discarded


def _described(letter: DeadLetterView) -> dict[str, str]:
    return {
        "type": letter.type,
        "routing_key": letter.routing_key,
        "queue": letter.queue,
        "reason": letter.reason,
    }
