"""Hold-power, alarm levels, power limits and time sets on a plain Modbus meter, over real
sockets.

The reference prepaid meter takes these commands in its registers: the collector opens the
envelope (here its development opener), writes the registers and reads them back; success
only when the meter shows what was asked. A write the meter answers with an exception is
final (not retried).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from functools import partial
from typing import Any

import pytest
from collector.domain import plain_envelope
from collector.domain.commands import AlarmLevels
from prepaid_common.contracts import (
    CommandAction,
    CommandRequestV1,
    CommandResultV1,
    Envelope,
    utcnow,
)
from simulator import FieldSimulator, SimulatedMeter
from testkit import wait_until
from testkit.collector import Collector, holds, running_collector


@pytest.fixture
async def field_sim() -> AsyncIterator[FieldSimulator]:
    mix = {"reference-prepaid": 1.0}
    async with FieldSimulator(1, 1, profile_mix=mix, speed=60.0) as simulator:
        yield simulator


@pytest.fixture
async def collector(
    backend: tuple[str, str], bus_prefix: str, field_sim: FieldSimulator
) -> AsyncIterator[Collector]:
    database_url, amqp_url = backend
    async with running_collector(database_url, amqp_url, bus_prefix) as running:
        response = await running.register(field_sim.dtus[0].registration())
        assert response.status_code == 201, response.text
        meter = field_sim.dtus[0].meters[0]
        await wait_until(holds(partial(running.readings, meter.meter_id)))
        yield running


async def run(
    collector: Collector, meter: SimulatedMeter, action: CommandAction, **fields: Any
) -> CommandResultV1:
    command_id = str(uuid.uuid4())
    now = utcnow()
    expires = now + timedelta(seconds=60)
    envelope = plain_envelope(
        meter_id=meter.meter_id, action=action, command_id=command_id, expires_at=expires, **fields
    )
    request = CommandRequestV1(
        command_id=command_id,
        meter_id=meter.meter_id,
        action=action,
        issued_at=now,
        expires_at=expires,
        envelope=envelope,
    )
    await collector.bus.publish(Envelope.wrap(request, producer="control"))
    return await collector.result_of(command_id)


async def test_hold_power_alarm_levels_power_limit_and_time_set_are_written_and_read_back(
    collector: Collector, field_sim: FieldSimulator
) -> None:
    meter = field_sim.dtus[0].meters[0]

    held = await run(collector, meter, "hold_on")
    assert held.succeeded, held.error
    assert meter.hold_power
    released = await run(collector, meter, "hold_off")
    assert released.succeeded, released.error
    assert not meter.hold_power

    levels = AlarmLevels(Decimal("20.00"), Decimal("5.50"))
    set_levels = await run(collector, meter, "alarm_thresholds", alarms=levels)
    assert set_levels.succeeded, set_levels.error
    assert meter.alarm_thresholds == (Decimal("20.00"), Decimal("5.50"))

    limited = await run(collector, meter, "power_limit", power_limit_kw=Decimal("3.50"))
    assert limited.succeeded, limited.error
    assert meter.power_limit_kw == Decimal("3.50")

    meter.set_meter_time(meter.meter_time() - timedelta(hours=3))
    wanted = utcnow()
    timed = await run(collector, meter, "time_set", time=wanted)
    assert timed.succeeded, timed.error
    local = wanted.astimezone().replace(tzinfo=None)
    # The simulated clock runs 60 times faster than the wall clock since the set.
    assert abs((meter.meter_time() - local).total_seconds()) < 600


async def test_levels_that_do_not_fit_the_meter_are_refused_without_a_write(
    collector: Collector, field_sim: FieldSimulator
) -> None:
    meter = field_sim.dtus[0].meters[0]
    # Three decimals cannot be written to a x0.01 register: refused, final, nothing changed.
    levels = AlarmLevels(Decimal("20.005"), Decimal("5.00"))
    result = await run(collector, meter, "alarm_thresholds", alarms=levels)
    assert not result.succeeded
    assert not result.retryable
    assert meter.alarm_thresholds == (Decimal("0.00"), Decimal("0.00"))
    # Nor a power limit finer than its x0.01 kW register.
    limit = await run(collector, meter, "power_limit", power_limit_kw=Decimal("3.505"))
    assert not limit.succeeded
    assert not limit.retryable
    assert meter.power_limit_kw is None
