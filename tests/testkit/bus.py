"""Bus helpers for the tests: a payment message to send, and what RabbitMQ dead-lettered."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import aio_pika
from prepaid_common.bus.rabbit import RabbitBus
from prepaid_common.contracts import Envelope, PaymentSucceededV1

from testkit import wait_until


def payment(n: int) -> PaymentSucceededV1:
    """Return the n-th payment of 1.00 to account A1 (id ``p<n>``)."""
    return PaymentSucceededV1(
        payment_id=f"p{n}",
        account_id="A1",
        amount=Decimal("1.00"),
        method="cash",
        reference=f"R{n}",
        at=datetime(2026, 1, 1, tzinfo=UTC),
    )


async def dead_letters(
    bus: RabbitBus, amqp_url: str, expected: int = 1, *, timeout: float = 60
) -> list[Envelope]:
    """Wait for ``expected`` messages on the bus's dead-letter queue and take them."""
    taken: list[Envelope] = []
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        dead = await channel.declare_queue(
            bus.dead_letter_queue, durable=True, arguments={"x-queue-type": "quorum"}
        )

        async def all_landed() -> bool:
            message = await dead.get(fail=False)
            if message is not None:
                await message.ack()
                taken.append(Envelope.from_bytes(message.body))
            return len(taken) >= expected

        await wait_until(all_landed, timeout=timeout)
    return taken
