"""Secure meters verify sealed commands themselves, over real sockets.

The simulated "secure prepaid" meters are personalised with keys diversified from the
site's master keys; the collector runs WITHOUT any key (its development opener) and writes
each envelope to the meter's registers unchanged. Every kind of command is carried out by
the meter when genuine; forged, altered, replayed and expired envelopes are refused by the
meter itself, counted, and recorded as security events; a command for a meter the collector
does not know is refused at the collector.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from functools import partial
from typing import Any

import pytest
from collector.domain import PlainCommandOpener
from prepaid_common.contracts import (
    AnomalyV1,
    CommandAction,
    CommandRequestV1,
    CommandResultV1,
    Envelope,
    utcnow,
)
from prepaid_common.sealing import Command, KeyRing, seal_text
from prometheus_client import REGISTRY
from simulator import FieldSimulator, SimulatedMeter
from testkit import wait_until
from testkit.collector import Collector, holds, running_collector

RING = KeyRing({1: bytes(range(16)), 2: bytes(range(32, 48))})
STRANGER = KeyRing({2: bytes(range(100, 116))})


@pytest.fixture
async def field_sim() -> AsyncIterator[FieldSimulator]:
    mix = {"secure-prepaid": 1.0}
    async with FieldSimulator(1, 2, profile_mix=mix, speed=60.0, command_keys=RING) as simulator:
        yield simulator


@pytest.fixture
async def keyless(
    backend: tuple[str, str], bus_prefix: str, field_sim: FieldSimulator
) -> AsyncIterator[Collector]:
    """A collector that holds no command key at all, polling the secure meters (on SQLite
    with the in-process bus, and on PostgreSQL with RabbitMQ)."""
    database_url, amqp_url = backend
    async with running_collector(database_url, amqp_url, bus_prefix) as running:
        assert isinstance(running.service.command_opener, PlainCommandOpener)
        response = await running.register(field_sim.dtus[0].registration())
        assert response.status_code == 201, response.text
        for meter in field_sim.dtus[0].meters:
            await wait_until(holds(partial(running.readings, meter.meter_id)))
        yield running


def sealed(
    meter_id: str,
    action: CommandAction,
    command_id: str,
    counter: int,
    *,
    ring: KeyRing = RING,
    ttl: float = 60,
    **payload: Any,
) -> str:
    now = utcnow()
    command = Command(
        meter_id,
        action,
        counter,
        now,
        now + timedelta(seconds=ttl),
        {"command_id": command_id, **payload},
    )
    return seal_text(command, ring)


async def send(
    collector: Collector,
    meter_id: str,
    action: CommandAction,
    envelope: str,
    command_id: str,
    **purchase: Any,
) -> CommandResultV1:
    now = utcnow()
    request = CommandRequestV1(
        command_id=command_id,
        meter_id=meter_id,
        action=action,
        issued_at=now,
        # What the request says in clear is not what the meter goes by: the sealed expiry is.
        expires_at=now + timedelta(seconds=60),
        envelope=envelope,
        **purchase,
    )
    await collector.bus.publish(Envelope.wrap(request, producer="control"))
    return await collector.result_of(command_id)


async def run(
    collector: Collector,
    meter: SimulatedMeter,
    action: CommandAction,
    counter: int,
    purchase: dict[str, Any] | None = None,
    **payload: Any,
) -> CommandResultV1:
    command_id = str(uuid.uuid4())
    purchase = purchase or {}
    envelope = sealed(
        meter.meter_id,
        action,
        command_id,
        counter,
        **payload,
        **{k: str(v) if k == "amount" else v for k, v in purchase.items()},
    )
    return await send(collector, meter.meter_id, action, envelope, command_id, **purchase)


def refused(kind: str) -> float:
    value = REGISTRY.get_sample_value("prepaid_collector_commands_refused_total", {"kind": kind})
    return value or 0.0


def security_events(collector: Collector, command_id: str) -> list[AnomalyV1]:
    return [
        anomaly
        for anomaly in collector.messages(AnomalyV1)
        if anomaly.kind == "command_refused" and command_id in anomaly.detail
    ]


async def test_every_kind_of_genuine_command_is_carried_out_by_the_meter(
    keyless: Collector, field_sim: FieldSimulator
) -> None:
    meter = field_sim.dtus[0].meters[0]
    assert meter.secure is not None

    tripped = await run(keyless, meter, "trip", 1)
    assert (tripped.succeeded, tripped.relay) == (True, "open"), tripped.error
    assert meter.relay == "open"
    closed = await run(keyless, meter, "close", 2)
    assert (closed.succeeded, closed.relay) == (True, "closed"), closed.error

    held = await run(keyless, meter, "hold_on", 3)
    assert held.succeeded, held.error
    assert meter.hold_power
    # Genuine, but the meter will not trip while hold-power is on: retried, not a refusal.
    blocked = await run(keyless, meter, "trip", 4)
    assert not blocked.succeeded
    assert blocked.retryable
    assert "not_executed" in blocked.error
    assert meter.relay == "closed"
    released = await run(keyless, meter, "hold_off", 5)
    assert released.succeeded, released.error
    assert not meter.hold_power

    meter.set_meter_time(meter.meter_time() - timedelta(hours=3))
    wanted = utcnow()
    timed = await run(keyless, meter, "time_set", 6, time=wanted.isoformat())
    assert timed.succeeded, timed.error
    local = wanted.astimezone().replace(tzinfo=None)
    # The simulated clock runs 60 times faster than the wall clock since the set.
    assert abs((meter.meter_time() - local).total_seconds()) < 600

    bought = await run(
        keyless, meter, "credit", 7, purchase={"amount": Decimal("50.00"), "purchase_count": 1}
    )
    assert bought.succeeded, bought.error
    assert (meter.purchase_count, meter.local_credit) == (1, Decimal("50.00"))

    levels = await run(keyless, meter, "alarm_thresholds", 8, first="20.00", second="5.00")
    assert levels.succeeded, levels.error
    assert meter.alarm_thresholds == (Decimal("20.00"), Decimal("5.00"))
    assert meter.secure.last_counter == 8
    assert not meter.secure.refusals[1:]  # only the trip under hold-power was not carried out

    limited = await run(keyless, meter, "power_limit", 9, kw="3.50")
    assert limited.succeeded, limited.error
    assert meter.power_limit_kw == Decimal("3.50")
    # Genuine, but finer than the meter's 0.01 kW register: not executed, the limit kept.
    finer = await run(keyless, meter, "power_limit", 10, kw="3.505")
    assert not finer.succeeded
    assert "not_executed" in finer.error
    assert meter.power_limit_kw == Decimal("3.50")


def forged(meter_id: str, command_id: str) -> str:
    """Sealed with a key that is not the site's."""
    return sealed(meter_id, "trip", command_id, 10, ring=STRANGER)


def altered(meter_id: str, command_id: str) -> str:
    """A genuine envelope with one bit of its ciphertext flipped on the way."""
    raw = bytearray(base64.b64decode(sealed(meter_id, "trip", command_id, 11)))
    raw[-12] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def expired(meter_id: str, command_id: str) -> str:
    """Genuine, but its sealed expiry has passed by the meter's own clock."""
    return sealed(meter_id, "trip", command_id, 12, ttl=-1)


@pytest.mark.parametrize(
    ("make", "kind"), [(forged, "forged"), (altered, "forged"), (expired, "expired")]
)
async def test_the_meter_refuses_a_forged_altered_or_expired_envelope(
    keyless: Collector, field_sim: FieldSimulator, make: Any, kind: str
) -> None:
    meter = field_sim.dtus[0].meters[1]
    assert meter.secure is not None
    before = refused(kind)
    command_id = str(uuid.uuid4())
    result = await send(
        keyless, meter.meter_id, "trip", make(meter.meter_id, command_id), command_id
    )
    assert not result.succeeded
    assert result.retryable is False
    assert result.error == f"refused at the meter: {kind}"
    assert meter.relay == "closed", f"a {kind} envelope was carried out"
    # The meter itself refused it: the collector only carried the words.
    assert meter.secure.refusals[-1][0] == kind
    assert meter.secure.last_counter == 0
    assert refused(kind) == before + 1
    (event,) = await wait_until(holds(partial(security_events, keyless, command_id)))
    assert f"refused at the meter ({kind})" in event.detail
    assert event.meter_id == meter.meter_id


async def test_the_meter_refuses_a_replayed_envelope(
    keyless: Collector, field_sim: FieldSimulator
) -> None:
    meter = field_sim.dtus[0].meters[1]
    assert meter.secure is not None
    first = str(uuid.uuid4())
    genuine = sealed(meter.meter_id, "trip", first, 21)
    result = await send(keyless, meter.meter_id, "trip", genuine, first)
    assert (result.succeeded, result.relay) == (True, "open"), result.error
    meter.relay = "closed"  # someone closed it by hand

    # The same envelope again, under a new command id (the collector keeps no counter for a
    # secure meter: the meter does).
    before = refused("replayed")
    replay = str(uuid.uuid4())
    result = await send(keyless, meter.meter_id, "trip", genuine, replay)
    assert not result.succeeded
    assert result.error == "refused at the meter: replayed"
    assert meter.relay == "closed"
    assert meter.secure.refusals[-1][0] == "replayed"
    assert refused("replayed") == before + 1
    await wait_until(holds(partial(security_events, keyless, replay)))
    # A lower counter is a replay too; a higher one is carried out.
    lower = str(uuid.uuid4())
    result = await send(
        keyless, meter.meter_id, "trip", sealed(meter.meter_id, "trip", lower, 20), lower
    )
    assert result.error == "refused at the meter: replayed"
    higher = str(uuid.uuid4())
    result = await send(
        keyless, meter.meter_id, "trip", sealed(meter.meter_id, "trip", higher, 22), higher
    )
    assert (result.succeeded, result.relay) == (True, "open"), result.error


async def test_a_command_for_a_meter_the_collector_does_not_know_is_refused(
    keyless: Collector,
) -> None:
    before = refused("unknown_meter")
    command_id = str(uuid.uuid4())
    now = utcnow()
    request = CommandRequestV1(
        command_id=command_id,
        meter_id="NOBODY-1",
        action="trip",
        issued_at=now,
        expires_at=now + timedelta(seconds=60),
        envelope=sealed("NOBODY-1", "trip", command_id, 1),
    )
    await keyless.bus.publish(Envelope.wrap(request, producer="control"))
    (event,) = await wait_until(holds(partial(security_events, keyless, command_id)))
    assert "unknown_meter" in event.detail
    assert refused("unknown_meter") == before + 1
    assert not keyless.messages(CommandResultV1, command_id=command_id)
