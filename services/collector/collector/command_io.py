"""Carrying out the commands that are not a relay switch or a register purchase: a sealed
envelope handed to a meter that verifies it itself, hold-power, alarm levels, a power limit
and a time set on Modbus meters that take them in registers.

Each returns the command's outcome; ``LinkDown`` is left to the bus loop (it reconnects).
"""

from __future__ import annotations

import logging
from datetime import datetime, tzinfo
from decimal import Decimal

from prepaid_common.contracts import RelayAction, RelayState
from prepaid_common.outbox import ServiceStore

from collector import records
from collector.domain import (
    ImplausibleValue,
    MeterProfile,
    OpenedCommand,
    ReadBlock,
    RefusedCommand,
    decode_local_credit,
    decode_relay,
    expected_relay,
    local_credit_blocks,
    purchase_not_due,
    registers_from_blocks,
)
from collector.domain.secure import (
    SECURITY_RESULTS,
    alarm_levels_read,
    alarm_words,
    clock_words,
    hold_power_on,
    hold_power_value,
    local_time,
    power_limit_read,
    power_limit_words,
    read_verdict,
    sealed_write,
    within,
)
from collector.links import BusLink, MeterRefused, MeterSilent
from collector.metrics import COMMANDS_REFUSED
from collector.records import CommandOutcome, MeterConfig, PendingCommand

log = logging.getLogger(__name__)

CLOCK_WORDS = 6


def _not_executed(error: Exception) -> CommandOutcome:
    return CommandOutcome(succeeded=False, error=f"meter did not execute: {error}")


async def deliver_sealed(
    store: ServiceStore,
    link: BusLink,
    meter: MeterConfig,
    profile: MeterProfile,
    command: PendingCommand,
    *,
    at: datetime,
) -> CommandOutcome:
    """Write a sealed envelope, unchanged, to a meter that verifies it; read its verdict.

    A refusal by the meter (forged or altered, replayed, expired, misdirected) is counted
    and recorded as a security event, exactly as the collector's own refusals are.
    """
    spec = profile.secure
    assert spec is not None
    try:
        if command.action not in spec.commands:
            raise RefusedCommand(f"profile {profile.name} does not take {command.action}")
        write = sealed_write(command.envelope, spec)
    except RefusedCommand as refusal:
        return await _refused(store, command, refusal.kind, refusal.reason, at=at, where="")
    try:
        purchase_count = command.purchase_count
        if purchase_count is not None and profile.local_credit is not None:
            # As for plain meters (meter_io.push_purchase): a count the meter has already
            # would be answered "already have it" whoever took it; billing weighs the credit.
            _credit, count_before = await _local_credit(link, meter, profile)
            not_due = purchase_not_due(purchase_count, count_before)
            if not_due is not None:
                return CommandOutcome(succeeded=False, error=not_due)
        await link.write_many(meter.unit_id, spec.envelope, write.words)
        words = await link.read(meter.unit_id, profile.read_function, ReadBlock(spec.result, 3))
        verdict = read_verdict(words, sent_counter=write.counter)
        if verdict.result == "accepted":
            return await _confirm(link, meter, profile, command)
    except (MeterSilent, MeterRefused, ImplausibleValue) as error:
        return _not_executed(error)
    if verdict.result == "purchase_refused":
        refused = f"meter refused purchase {command.purchase_count}"
        return CommandOutcome(succeeded=False, error=refused, retryable=False)
    if verdict.result not in SECURITY_RESULTS:
        return CommandOutcome(succeeded=False, error=f"meter did not execute: {verdict.result}")
    return await _refused(
        store, command, verdict.result, verdict.result, at=at, where=" at the meter"
    )


async def _refused(
    store: ServiceStore,
    command: PendingCommand,
    kind: str,
    reason: str,
    *,
    at: datetime,
    where: str,
) -> CommandOutcome:
    refusal = RefusedCommand(f"refused{where}: {reason}", kind)
    log.warning(
        "command refused",
        extra={
            "meter_id": command.meter_id,
            "command_id": command.command_id,
            "reason": refusal.reason,
            "kind": kind,
        },
    )
    COMMANDS_REFUSED.labels(kind).inc()
    if refusal.security:
        await records.record_security_event(
            store,
            meter_id=command.meter_id,
            detail=f"command {command.command_id} refused{where} ({kind}): {reason}"[:400],
            at=at,
        )
    return CommandOutcome(succeeded=False, error=refusal.reason, retryable=False)


async def _confirm(
    link: BusLink, meter: MeterConfig, profile: MeterProfile, command: PendingCommand
) -> CommandOutcome:
    """Read back what an accepted envelope changed, where the registers show it."""
    if command.action in ("trip", "close") and profile.relay is not None:
        state = ReadBlock(profile.relay.state.address, 1)
        words = await link.read(meter.unit_id, profile.read_function, state)
        relay: RelayState = decode_relay(profile, words[0])
        action: RelayAction = "trip" if command.action == "trip" else "close"
        if relay != expected_relay(action):
            # Accepted, but the contactor did not follow: relay truth asks again.
            return CommandOutcome(
                succeeded=False, relay=relay, error=f"relay is {relay} after {action}"
            )
        return CommandOutcome(succeeded=True, relay=relay)
    if command.action == "credit" and profile.local_credit is not None:
        _credit, count = await _local_credit(link, meter, profile)
        if count != command.purchase_count:
            return CommandOutcome(
                succeeded=False,
                error=f"purchase count is {count} after pushing {command.purchase_count}",
            )
    return CommandOutcome(succeeded=True)


async def _local_credit(
    link: BusLink, meter: MeterConfig, profile: MeterProfile
) -> tuple[Decimal, int]:
    blocks = local_credit_blocks(profile)
    results = [await link.read(meter.unit_id, profile.read_function, b) for b in blocks]
    return decode_local_credit(profile, registers_from_blocks(blocks, results))


async def write_registers(
    link: BusLink,
    meter: MeterConfig,
    profile: MeterProfile,
    opened: OpenedCommand,
    *,
    zone: tzinfo | None,
) -> CommandOutcome:
    """Carry out hold-power, alarm levels, a power limit or a time set by writing the model's
    registers, then read them back: success only when the meter shows what was asked."""
    try:
        if opened.action in ("hold_on", "hold_off"):
            return await _hold_power(link, meter, profile, on=opened.action == "hold_on")
        if opened.action == "alarm_thresholds":
            return await _alarm_levels(link, meter, profile, opened)
        if opened.action == "time_set":
            return await _time_set(link, meter, profile, opened, zone=zone)
        if opened.action == "power_limit":
            return await _power_limit(link, meter, profile, opened)
    except RefusedCommand as refusal:
        return CommandOutcome(succeeded=False, error=refusal.reason, retryable=False)
    except MeterRefused as error:
        # The meter's exception to a well-formed write: the same write gets the same answer.
        return CommandOutcome(
            succeeded=False, error=f"meter did not execute: {error}", retryable=False
        )
    except (MeterSilent, ImplausibleValue) as error:
        return _not_executed(error)
    return CommandOutcome(succeeded=False, error=f"{opened.action} is not written to registers")


async def _hold_power(
    link: BusLink, meter: MeterConfig, profile: MeterProfile, *, on: bool
) -> CommandOutcome:
    spec = profile.hold_power
    if spec is None:
        raise RefusedCommand(f"profile {profile.name} has no hold-power control")
    await link.write(meter.unit_id, *hold_power_value(spec, on))
    (status,) = await link.read(meter.unit_id, profile.read_function, ReadBlock(spec.state, 1))
    if hold_power_on(spec, status) != on:
        state = "on" if not on else "off"
        return CommandOutcome(succeeded=False, error=f"hold-power is {state} after the command")
    return CommandOutcome(succeeded=True)


async def _alarm_levels(
    link: BusLink, meter: MeterConfig, profile: MeterProfile, opened: OpenedCommand
) -> CommandOutcome:
    if opened.alarms is None:
        raise RefusedCommand("alarm_thresholds without levels")
    address, words = alarm_words(profile, opened.alarms)
    await link.write_many(meter.unit_id, address, words)
    back = await link.read(meter.unit_id, profile.read_function, ReadBlock(address, len(words)))
    shown = alarm_levels_read(profile, back)
    if shown != opened.alarms:
        return CommandOutcome(
            succeeded=False, error=f"alarm levels are {shown.first}, {shown.second} after the write"
        )
    return CommandOutcome(succeeded=True)


async def _power_limit(
    link: BusLink, meter: MeterConfig, profile: MeterProfile, opened: OpenedCommand
) -> CommandOutcome:
    if opened.power_limit_kw is None:
        raise RefusedCommand("power_limit without a limit")
    address, words = power_limit_words(profile, opened.power_limit_kw)
    await link.write_many(meter.unit_id, address, words)
    back = await link.read(meter.unit_id, profile.read_function, ReadBlock(address, len(words)))
    shown = power_limit_read(profile, back)
    if shown != opened.power_limit_kw:
        return CommandOutcome(succeeded=False, error=f"power limit is {shown} kW after the write")
    return CommandOutcome(succeeded=True)


async def _time_set(
    link: BusLink,
    meter: MeterConfig,
    profile: MeterProfile,
    opened: OpenedCommand,
    *,
    zone: tzinfo | None,
) -> CommandOutcome:
    clock = profile.clock
    if clock is None:
        raise RefusedCommand(f"profile {profile.name} has no clock to set")
    if opened.time is None:
        raise RefusedCommand("time_set without a time")
    wanted = local_time(opened.time, zone)
    await link.write_many(meter.unit_id, clock.address, clock_words(wanted))
    words = await link.read(
        meter.unit_id, profile.read_function, ReadBlock(clock.address, CLOCK_WORDS)
    )
    try:
        year, month, day, hour, minute, second = words
        shown = datetime(year, month, day, hour, minute, second)
    except ValueError:
        raise ImplausibleValue(f"clock registers {words} are not a time") from None
    if not within(shown, wanted, clock.tolerance_seconds):
        return CommandOutcome(succeeded=False, error=f"clock shows {shown} after setting {wanted}")
    return CommandOutcome(succeeded=True)
