"""A consumer stopping finishes the message in hand: its unit of work ends and is acked, so
nothing is cut in the middle and nothing comes again after the restart."""

from __future__ import annotations

import asyncio

from prepaid_common.bus.rabbit import RabbitBus
from prepaid_common.contracts import Envelope
from testkit.bus import payment


async def test_close_lets_the_message_in_hand_finish_and_acks_it(
    amqp_url: str, bus_prefix: str
) -> None:
    started = asyncio.Event()
    finished: list[str] = []

    async def slow_handler(envelope: Envelope) -> None:
        started.set()
        await asyncio.sleep(0.5)  # a unit of work in progress when the stop comes
        finished.append(envelope.payload["payment_id"])

    first = RabbitBus(amqp_url, prefix=bus_prefix)
    first.subscribe("orders", ["payment.succeeded.v1.#"], slow_handler)
    await first.start()
    await first.publish(Envelope.wrap(payment(1), producer="test"))
    await asyncio.wait_for(started.wait(), 10)
    await first.close()
    assert finished == ["p1"], "the handler was cut off by the shutdown"

    # Acked before the consumer stopped: a new consumer gets nothing again.
    again: list[str] = []

    async def record(envelope: Envelope) -> None:
        again.append(envelope.payload["payment_id"])

    second = RabbitBus(amqp_url, prefix=bus_prefix)
    second.subscribe("orders", ["payment.succeeded.v1.#"], record)
    await second.start()
    try:
        await asyncio.sleep(1.0)
        assert again == []
    finally:
        await second.close()
        await second.delete_topology()
