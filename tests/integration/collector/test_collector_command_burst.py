"""A burst of sealed commands through RabbitMQ: every one carried out once, in one pass.

The collector takes command requests in batches (one transaction for a burst, so that a
thousand trips at once do not wait for a thousand commits). The batch must not cost a
command its execution, run one twice, or let an unknown meter's command through.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from prepaid_common.contracts import AnomalyV1, CommandResultV1, Envelope, utcnow
from prepaid_common.contracts import CommandRequestV1 as Request
from prepaid_common.sealing import Command, KeyRing, seal_text
from simulator import FieldSimulator
from testkit import wait_until
from testkit.collector import Collector, holds, running_collector

RING = KeyRing({1: bytes(range(16))})


@pytest.fixture
async def field_sim() -> AsyncIterator[FieldSimulator]:
    async with FieldSimulator(1, 8, profile_mix={"reference-prepaid": 1.0}, speed=60.0) as sim:
        yield sim


@pytest.fixture
async def collector(
    postgres_url: str, amqp_url: str, bus_prefix: str, tmp_path: Path
) -> AsyncIterator[Collector]:
    keys = tmp_path / "command-keys"
    keys.write_text(f"1 {RING.keys[1].hex()}\n")
    async with running_collector(
        postgres_url, amqp_url, bus_prefix, command_master_key_file=keys
    ) as running:
        yield running


def trip(meter_id: str, counter: int) -> Envelope:
    command_id = str(uuid.uuid4())
    now = utcnow()
    sealed = seal_text(
        Command(
            meter_id, "trip", counter, now, now + timedelta(seconds=60), {"command_id": command_id}
        ),
        RING,
    )
    request = Request(
        command_id=command_id,
        meter_id=meter_id,
        action="trip",
        issued_at=now,
        expires_at=now + timedelta(seconds=60),
        envelope=sealed,
    )
    return Envelope.wrap(request, producer="control")


async def test_a_burst_of_commands_is_carried_out_once_each(
    collector: Collector, field_sim: FieldSimulator
) -> None:
    await collector.register(field_sim.dtus[0].registration())
    meters = [meter.meter_id for meter in field_sim.dtus[0].meters]
    await wait_until(holds(lambda: all(collector.readings(m) for m in meters)))

    trips = [trip(meter_id, counter=3) for meter_id in meters]
    stranger = trip("NOBODY-7", counter=1)
    # The second trip sent again by control under a new message id (a retry of its outbox
    # after a lost confirm): the same command, to be kept once.
    resent = Envelope.wrap(Request.model_validate(trips[1].payload), producer="control")
    # One publication: the broker hands the consumer the whole burst at once, the first
    # trip twice (a redelivery under the same message id), the second again under another
    # id, and a command for no meter of ours amid the others.
    await collector.bus.publish_many([*trips[:4], stranger, *trips[4:], trips[0], resent])

    def results() -> list[CommandResultV1]:
        return collector.messages(CommandResultV1)

    await wait_until(holds(lambda: len(results()) >= len(meters)), timeout=30)
    done = {r.command_id: r for r in results()}
    assert len(results()) == len(meters), "a command was carried out twice"
    for envelope in trips:
        result = done[str(envelope.payload["command_id"])]
        assert (result.succeeded, result.relay) == (True, "open"), result.error
    assert all(field_sim.meter(m).relay == "open" for m in meters)

    stranger_id = str(stranger.payload["command_id"])
    await wait_until(
        holds(
            lambda: [
                a
                for a in collector.messages(AnomalyV1)
                if a.kind == "command_refused" and stranger_id in a.detail
            ]
        )
    )
    assert stranger_id not in done
