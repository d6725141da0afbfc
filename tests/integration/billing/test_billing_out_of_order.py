"""A meter's readings delivered newest first through RabbitMQ are billed from the earliest:
the first reading delivered after binding is not taken as the start when an older one
follows (issue: energy between them was never billed)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from billing.tables import anomalies
from prepaid_common.bus.rabbit import RabbitBus
from prepaid_common.contracts import utcnow
from sqlalchemy import select
from testkit import wait_until
from testkit.billing import balance, billing_on, define_tariff, open_with_meters, reading

NOW = utcnow().replace(microsecond=0)


async def test_readings_delivered_newest_first_are_billed_from_the_earliest(
    postgres_url: str, amqp_url: str, bus_prefix: str
) -> None:
    bus = RabbitBus(amqp_url, prefix=bus_prefix)
    billing = await billing_on(postgres_url, bus)
    try:
        await define_tariff(billing, "tiered")
        meters = [f"R{i}" for i in range(6)]
        for meter in meters:
            await open_with_meters(billing, f"A-{meter}", [meter], tariff_id="tiered")
        billing.register()
        await bus.start()
        # 4 kWh read over four minutes, delivered newest first (an outbox replayed after a
        # collector restart, say): the first delivered is the last read.
        for minutes in reversed(range(5)):
            for meter in meters:
                await bus.publish(reading(meter, NOW + timedelta(minutes=minutes), str(minutes)))

        async def all_charged() -> bool:
            return all([await balance(billing, f"A-{m}") == Decimal("96.00") for m in meters])

        await wait_until(all_charged, timeout=60)
        async with billing.store.sessionmaker() as session:
            kinds = (await session.scalars(select(anomalies.c.kind))).all()
        assert "before_start" not in kinds
    finally:
        await bus.close()
        await bus.delete_topology()
        await billing.engine.dispose()
