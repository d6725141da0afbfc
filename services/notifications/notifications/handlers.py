"""What notifications does with a bus message, inside the message's unit of work: re-arm
crossings, and for each fact add the messages and webhook deliveries it calls for (sent
later by the dispatcher, so a provider's trouble never holds a message on the bus)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from decimal import Decimal

from prepaid_common.contracts import Envelope, utcnow
from prepaid_common.outbox import UnitOfWork

from notifications.domain import facts
from notifications.domain.delivery import QuietHours, not_before
from notifications.domain.kinds import OPERATORS, Channel, is_urgent, webhook_event_of
from notifications.domain.preferences import Preferences, targets
from notifications.domain.texts import render
from notifications.metrics import FACTS
from notifications.store import crossings
from notifications.store import messages as message_store
from notifications.store import preferences as preference_store
from notifications.store import webhooks as webhook_store


@dataclass(frozen=True)
class Audience:
    """What the handlers need to know beyond a message: the channels on, the operators'
    contacts, quiet hours."""

    enabled: frozenset[Channel]
    operators: Preferences
    quiet: QuietHours | None


class NotificationHandlers:
    def __init__(self, audience: Audience) -> None:
        self.audience = audience

    async def on_event(self, uow: UnitOfWork, envelope: Envelope) -> None:
        for item in facts.read(envelope):
            if isinstance(item, facts.Rearm):
                await crossings.rearm(uow.session, item)
            else:
                await self.tell(uow, item)

    async def tell(self, uow: UnitOfWork, fact: facts.Fact) -> None:
        """Add the messages and webhook deliveries of one fact (none twice)."""
        session = uow.session
        now = utcnow()
        episode = fact.episode
        if fact.crossing is not None:
            number = await crossings.open_crossing(session, fact.crossing, now=now)
            if number is None:
                FACTS.labels(fact.kind.value, "repeated").inc()
                return  # this crossing was told already
            episode = f"{episode}:{number}"
        FACTS.labels(fact.kind.value, "told").inc()
        if fact.notify:
            await self._messages(uow, fact, episode)
        await self._deliveries(uow, fact, episode)

    async def _messages(self, uow: UnitOfWork, fact: facts.Fact, episode: str) -> None:
        if fact.recipient == OPERATORS:
            preferences = self.audience.operators
        else:
            stored = await preference_store.stored(uow.session, fact.recipient)
            preferences = preference_store.as_domain(stored)
        rendered = render(fact.kind, fact.params)
        now = utcnow()
        release = not_before(urgent=is_urgent(fact.kind), now=now, quiet=self.audience.quiet)
        for target in targets(fact.kind, preferences, self.audience.enabled):
            await message_store.add_message(
                uow.session,
                {
                    "id": str(uuid.uuid4()),
                    "dedup_key": f"{episode}:{target.channel}:{target.address}"[:300],
                    "kind": fact.kind.value,
                    "recipient": fact.recipient,
                    "channel": target.channel,
                    "address": target.address,
                    "title": rendered.title,
                    "text": rendered.text,
                    "params": message_store.params_json(rendered.params),
                    "status": "pending",
                    "attempts": 0,
                    "not_before": release,
                    "next_attempt_at": release,
                    "provider_answer": "",
                    "created_at": now,
                    "sent_at": None,
                },
            )

    async def _deliveries(self, uow: UnitOfWork, fact: facts.Fact, episode: str) -> None:
        event_type = webhook_event_of(fact.kind)
        if event_type is None:
            return
        now = utcnow()
        event_id = f"{event_type}:{episode}"[:300]
        body = json.dumps(
            {
                "id": event_id,
                "type": event_type,
                "created_at": now.isoformat(),
                "data": {"kind": fact.kind.value, "at": fact.at.isoformat(), **_data(fact)},
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )
        for subscription in await webhook_store.active_subscriptions(uow.session):
            if event_type not in json.loads(subscription.events):
                continue
            await webhook_store.add_delivery(
                uow.session,
                {
                    "id": str(uuid.uuid4()),
                    "subscription_id": subscription.id,
                    "event_id": event_id,
                    "event_type": event_type,
                    "body": body,
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "response_status": None,
                    "last_error": "",
                    "created_at": now,
                    "delivered_at": None,
                },
            )


def _data(fact: facts.Fact) -> dict[str, str]:
    """The fact's parameters under the names a third party reads (money as strings)."""
    names = {
        "account": "account_id",
        "meter": "meter_id",
        "dtu": "dtu_id",
        "payment": "payment_id",
    }
    data = {names.get(name, name): value for name, value in fact.params.items()}
    for money in ("balance", "line", "amount"):
        if money in data:
            data[money] = str(Decimal(data[money]))
    return data
