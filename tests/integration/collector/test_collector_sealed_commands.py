"""Sealed commands over real sockets: the collector verifies each envelope before it writes.

The collector runs with the 3DES/AES opener on a master key file; the simulated meters are
reached over Modbus TCP. Forged, altered, replayed, expired and misdirected envelopes are
refused (counted, and said as security events); a command for an unknown meter is refused.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from functools import partial
from pathlib import Path

import pytest
from prepaid_common.contracts import (
    AnomalyV1,
    CommandAction,
    CommandResultV1,
    Envelope,
    RelayAction,
    utcnow,
)
from prepaid_common.contracts import CommandRequestV1 as Request
from prepaid_common.sealing import Command, KeyRing, seal_text
from prometheus_client import REGISTRY
from simulator import FieldSimulator
from testkit import wait_until
from testkit.collector import Collector, holds, running_collector

RING = KeyRing({1: bytes(range(16))})
STRANGER = KeyRing({1: bytes(range(100, 116))})


@pytest.fixture
async def field_sim() -> AsyncIterator[FieldSimulator]:
    mix = {"reference-prepaid": 1.0}
    async with FieldSimulator(1, 1, profile_mix=mix, speed=60.0) as simulator:
        yield simulator


@pytest.fixture
async def sealed(sqlite_url: str, tmp_path: Path) -> AsyncIterator[Collector]:
    keys = tmp_path / "command-keys"
    keys.write_text(f"1 {RING.keys[1].hex()}\n")
    async with running_collector(sqlite_url, command_master_key_file=keys) as running:
        yield running


def envelope(
    meter_id: str,
    action: CommandAction,
    command_id: str,
    counter: int,
    *,
    ring: KeyRing = RING,
    ttl: float = 60,
) -> str:
    now = utcnow()
    return seal_text(
        Command(
            meter_id, action, counter, now, now + timedelta(seconds=ttl), {"command_id": command_id}
        ),
        ring,
    )


async def send(
    collector: Collector, meter_id: str, action: CommandAction, sealed: str, command_id: str
) -> CommandResultV1 | None:
    now = utcnow()
    request = Request(
        command_id=command_id,
        meter_id=meter_id,
        action=action,
        issued_at=now,
        expires_at=now + timedelta(seconds=60),
        envelope=sealed,
    )
    await collector.bus.publish(Envelope.wrap(request, producer="control"))
    return await collector.result_of(command_id)


def refused(kind: str) -> float:
    value = REGISTRY.get_sample_value("prepaid_collector_commands_refused_total", {"kind": kind})
    return value or 0.0


def security_events(collector: Collector, command_id: str) -> list[AnomalyV1]:
    return [
        a
        for a in collector.messages(AnomalyV1)
        if a.kind == "command_refused" and command_id in a.detail
    ]


async def test_every_refusal_over_real_sockets(
    sealed: Collector, field_sim: FieldSimulator
) -> None:
    await sealed.register(field_sim.dtus[0].registration())
    meter_id = field_sim.dtus[0].meters[0].meter_id
    meter = field_sim.meter(meter_id)
    await wait_until(holds(lambda: sealed.readings(meter_id)))

    # A genuine envelope is executed.
    first = str(uuid.uuid4())
    genuine = envelope(meter_id, "trip", first, counter=5)
    result = await send(sealed, meter_id, "trip", genuine, first)
    assert result is not None
    assert (result.succeeded, result.relay) == (True, "open"), result.error
    assert meter.relay == "open"

    cases: list[tuple[str, RelayAction, str]] = []
    # Forged: sealed with a key that is not the site's.
    forged_id = str(uuid.uuid4())
    cases.append(("forged", "close", envelope(meter_id, "close", forged_id, 6, ring=STRANGER)))
    # Altered: one bit of the ciphertext flipped on the way.
    altered_id = str(uuid.uuid4())
    raw = bytearray(base64.b64decode(envelope(meter_id, "close", altered_id, 7)))
    raw[-12] ^= 0x01
    cases.append(("forged", "close", base64.b64encode(bytes(raw)).decode()))
    # Replayed: the genuine trip again (its counter is not above the last one taken).
    cases.append(("replayed", "trip", genuine))
    # Expired: the sealed expiry has passed, whatever the request says.
    cases.append(("expired", "close", envelope(meter_id, "close", str(uuid.uuid4()), 8, ttl=-1)))
    # Misdirected: a genuine envelope for another meter.
    cases.append(("wrong_meter", "close", envelope("OTHER-1", "close", str(uuid.uuid4()), 9)))
    for kind, action, text in cases:
        before = refused(kind)
        command_id = str(uuid.uuid4())
        result = await send(sealed, meter_id, action, text, command_id)
        assert result is not None
        assert not result.succeeded, kind
        assert result.retryable is False
        assert kind in result.error or (kind == "expired" and result.error == "expired")
        assert refused(kind) == before + 1
        await wait_until(holds(partial(security_events, sealed, command_id)))
        assert meter.relay == "open", f"{kind} envelope was executed"

    # A genuine close with a higher counter still works after the refusals.
    close_id = str(uuid.uuid4())
    result = await send(
        sealed, meter_id, "close", envelope(meter_id, "close", close_id, 10), close_id
    )
    assert result is not None
    assert (result.succeeded, result.relay) == (True, "closed"), result.error
    assert field_sim.meter(meter_id).relay == "closed"


async def test_a_command_for_an_unknown_meter_is_refused(
    sealed: Collector, field_sim: FieldSimulator
) -> None:
    await sealed.register(field_sim.dtus[0].registration())
    before = refused("unknown_meter")
    command_id = str(uuid.uuid4())
    now = utcnow()
    request = Request(
        command_id=command_id,
        meter_id="NOBODY-1",
        action="trip",
        issued_at=now,
        expires_at=now + timedelta(seconds=60),
        envelope=envelope("NOBODY-1", "trip", command_id, 1),
    )
    await sealed.bus.publish(Envelope.wrap(request, producer="control"))
    await wait_until(holds(lambda: security_events(sealed, command_id)))
    assert refused("unknown_meter") == before + 1
    assert not sealed.messages(CommandResultV1, command_id=command_id)


async def test_a_replay_is_refused_after_the_collector_restarts(
    sqlite_url: str, tmp_path: Path, field_sim: FieldSimulator
) -> None:
    keys = tmp_path / "command-keys"
    keys.write_text(f"1 {RING.keys[1].hex()}\n")
    meter_id = field_sim.dtus[0].meters[0].meter_id
    first = str(uuid.uuid4())
    genuine = envelope(meter_id, "trip", first, counter=41)
    async with running_collector(sqlite_url, command_master_key_file=keys) as before:
        await before.register(field_sim.dtus[0].registration())
        result = await send(before, meter_id, "trip", genuine, first)
        assert result is not None
        assert result.succeeded, result.error
    field_sim.meter(meter_id).relay = "closed"

    # A new process (or another replica) knows the counter the meter last took.
    async with running_collector(sqlite_url, command_master_key_file=keys) as after:
        replay_id = str(uuid.uuid4())
        result = await send(after, meter_id, "trip", genuine, replay_id)
        assert result is not None
        assert not result.succeeded
        assert "replayed" in result.error
        assert field_sim.meter(meter_id).relay == "closed"


async def test_hold_power_on_a_dlt645_meter_through_sealed_remote_control_frames(
    sealed: Collector,
) -> None:
    mix = {"dlt645-2007": 1.0}
    async with FieldSimulator(
        1, 1, profile_mix=mix, kind_mix={"rtu-over-tcp": 1}, speed=60.0
    ) as field:
        await sealed.register(field.dtus[0].registration())
        meter_id = field.dtus[0].meters[0].meter_id
        meter = field.meter(meter_id)
        await wait_until(holds(lambda: sealed.readings(meter_id)))

        async def run(action: CommandAction, counter: int) -> CommandResultV1:
            command_id = str(uuid.uuid4())
            text = envelope(meter_id, action, command_id, counter)
            result = await send(sealed, meter_id, action, text, command_id)
            assert result is not None
            return result

        held = await run("hold_on", 1)
        assert held.succeeded, held.error
        assert meter.hold_power
        # The meter itself refuses a trip while hold-power is on (DL/T 645 error answer).
        refused = await run("trip", 2)
        assert not refused.succeeded
        assert meter.relay == "closed"
        released = await run("hold_off", 3)
        assert released.succeeded, released.error
        assert not meter.hold_power
        tripped = await run("trip", 4)
        assert (tripped.succeeded, tripped.relay) == (True, "open"), tripped.error
