"""Standalone's dead letters (the in-process bus) are listed, replayed and discarded too."""

from __future__ import annotations

import pytest
from prepaid_common.bus import InProcessBus
from prepaid_common.contracts import Envelope
from prepaid_common.dead_letters import dead_letters_of
from prepaid_common.errors import NotFound
from testkit.bus import payment


async def test_in_process_dead_letters_are_listed_replayed_and_discarded() -> None:
    bus = InProcessBus(retry_delay=0)
    broken = {"p1", "p2"}
    applied: list[str] = []

    async def handle(envelope: Envelope) -> None:
        if envelope.payload["payment_id"] in broken:
            raise RuntimeError("bug")
        applied.append(envelope.payload["payment_id"])

    bus.subscribe("billing.payments", ["payment.succeeded.v1.#"], handle)
    first, second = (Envelope.wrap(payment(n), producer="t") for n in (1, 2))
    await bus.publish(first)
    await bus.publish(second)
    dead_letters = dead_letters_of(bus)

    page = await dead_letters.page()
    assert page.total == 2
    assert [item.message_id for item in page.items] == [first.message_id, second.message_id]
    assert page.items[0].queue == "billing.payments"
    assert page.items[0].routing_key == first.routing_key

    broken.clear()
    await dead_letters.replay(first.message_id)
    assert applied == ["p1"]
    await dead_letters.discard(second.message_id)
    assert (await dead_letters.page()).total == 0
    with pytest.raises(NotFound):
        await dead_letters.replay(second.message_id)
