"""What reading, switching, pushing a purchase to and setting the clock of one meter asks
of its bus link.

Modbus meters are read by the blocks their profile plans; DL/T 645 meters by data
identifiers. Every reply is checked (address, identifier, plausibility) before it counts.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from prepaid_common.contracts import RelayAction, RelayState

from collector.domain import (
    DecodedReading,
    Dlt645Profile,
    ImplausibleValue,
    Profile,
    Purchase,
    ReadBlock,
    check_plausible,
    decode_local_credit,
    decode_reading,
    decode_relay,
    dlt645,
    local_credit_blocks,
    local_credit_profile,
    purchase_words,
    registers_from_blocks,
    relay_command_value,
)
from collector.domain.decoding import THOUSANDTH
from collector.links import BusLink, MeterGarbled, MeterRefused
from collector.records import MeterConfig

CLOCK_WORDS = 6  # year, month, day, hour, minute, second
# How long a DL/T 645 remote control frame stays valid once sent.
CONTROL_VALIDITY = timedelta(minutes=5)


async def read_meter(
    link: BusLink, meter: MeterConfig, profile: Profile, plan: tuple[ReadBlock, ...]
) -> DecodedReading:
    """Poll one meter; raise MeterSilent, MeterRefused or ImplausibleValue for no reading."""
    if isinstance(profile, Dlt645Profile):
        return await _read_dlt645(link, meter.address, profile)
    results = [await link.read(meter.unit_id, profile.read_function, block) for block in plan]
    return decode_reading(profile, registers_from_blocks(plan, results))


async def _read_item(link: BusLink, address: str, identifier: int) -> bytes:
    frame = await link.dlt645(dlt645.read_frame(address, identifier))
    assert frame is not None
    try:
        return dlt645.read_value(frame, address=address, identifier=identifier)
    except dlt645.GarbledFrame as error:
        raise MeterGarbled(f"garbled reply: {error}") from None
    except dlt645.MeterRefused as error:
        raise MeterRefused(error.code) from None


async def _read_dlt645(link: BusLink, address: str, profile: Dlt645Profile) -> DecodedReading:
    identifier = dlt645.FORWARD_ENERGY if profile.energy == "forward" else dlt645.COMBINED_ENERGY
    try:
        energy = dlt645.decode_energy(await _read_item(link, address, identifier))
        relay: RelayState | None = None
        if profile.relay:
            status = await _read_item(link, address, dlt645.STATUS_WORD_3)
            relay = "open" if dlt645.relay_open(status) else "closed"
    except dlt645.GarbledFrame as error:
        raise ImplausibleValue(str(error)) from None
    reading = DecodedReading(energy_kwh=energy.quantize(THOUSANDTH), relay=relay)
    check_plausible(reading, profile)
    return reading


async def switch_relay(
    link: BusLink, meter: MeterConfig, profile: Profile, action: RelayAction, *, now: datetime
) -> RelayState:
    """Trip or close the relay and return the state the meter then reports.

    ``now`` is the meter's local time (a DL/T 645 control frame carries its expiry).
    """
    if isinstance(profile, Dlt645Profile):
        command = dlt645.TRIP if action == "trip" else dlt645.DIRECT_CLOSE
        frame = await link.dlt645(
            dlt645.remote_control_frame(
                meter.address,
                command=command,
                password=bytes.fromhex(profile.password),
                operator=bytes.fromhex(profile.operator),
                expires=now + CONTROL_VALIDITY,
            )
        )
        assert frame is not None
        try:
            dlt645.check_reply(frame, address=meter.address, control=dlt645.REMOTE_CONTROL)
        except dlt645.GarbledFrame as error:
            raise MeterGarbled(f"garbled reply: {error}") from None
        except dlt645.MeterRefused as error:
            raise MeterRefused(error.code) from None
        status = await _read_item(link, meter.address, dlt645.STATUS_WORD_3)
        try:
            return "open" if dlt645.relay_open(status) else "closed"
        except dlt645.GarbledFrame as error:
            raise ImplausibleValue(str(error)) from None
    register, value = relay_command_value(profile, action)
    assert profile.relay is not None
    await link.write(meter.unit_id, register, value)
    state = ReadBlock(profile.relay.state.address, 1)
    words = await link.read(meter.unit_id, profile.read_function, state)
    return decode_relay(profile, words[0])


async def set_hold_power(
    link: BusLink, meter: MeterConfig, profile: Dlt645Profile, on: bool, *, now: datetime
) -> bool:
    """Switch a DL/T 645 meter's hold-power (保电) and return what its status word says."""
    frame = await link.dlt645(
        dlt645.remote_control_frame(
            meter.address,
            command=dlt645.HOLD_ON if on else dlt645.HOLD_OFF,
            password=bytes.fromhex(profile.password),
            operator=bytes.fromhex(profile.operator),
            expires=now + CONTROL_VALIDITY,
        )
    )
    assert frame is not None
    try:
        dlt645.check_reply(frame, address=meter.address, control=dlt645.REMOTE_CONTROL)
    except dlt645.GarbledFrame as error:
        raise MeterGarbled(f"garbled reply: {error}") from None
    except dlt645.MeterRefused as error:
        raise MeterRefused(error.code) from None
    status = await _read_item(link, meter.address, dlt645.STATUS_WORD_3)
    try:
        return dlt645.hold_power_on(status)
    except dlt645.GarbledFrame as error:
        raise ImplausibleValue(str(error)) from None


async def push_purchase(
    link: BusLink, meter: MeterConfig, profile: Profile, purchase: Purchase
) -> tuple[Decimal, int]:
    """Write a purchase (one FC16 request) and return the (credit, count) the meter then shows.

    MeterRefused is the meter refusing the purchase count; RefusedCommand a model that keeps
    no local credit or values its registers cannot hold.
    """
    model = local_credit_profile(profile)
    address, words = purchase_words(model, purchase)
    await link.write_many(meter.unit_id, address, words)
    blocks = local_credit_blocks(model)
    results = [await link.read(meter.unit_id, model.read_function, block) for block in blocks]
    return decode_local_credit(model, registers_from_blocks(blocks, results))


def has_clock(profile: Profile) -> bool:
    """True if the collector keeps this model's clock."""
    return profile.clock if isinstance(profile, Dlt645Profile) else profile.clock is not None


def clock_limits(profile: Profile) -> tuple[int, int]:
    """Return (drift left alone, drift still settable) in seconds."""
    if isinstance(profile, Dlt645Profile):
        return profile.clock_tolerance_seconds, profile.clock_max_set_seconds
    assert profile.clock is not None
    return profile.clock.tolerance_seconds, profile.clock.max_set_seconds


async def read_clock(link: BusLink, meter: MeterConfig, profile: Profile) -> datetime:
    """Return the meter's clock (naive local time); ImplausibleValue if it is not a time."""
    if isinstance(profile, Dlt645Profile):
        date = await _read_item(link, meter.address, dlt645.DATE)
        time = await _read_item(link, meter.address, dlt645.TIME)
        try:
            return dlt645.decode_clock(date, time)
        except dlt645.GarbledFrame as error:
            raise ImplausibleValue(str(error)) from None
    assert profile.clock is not None
    block = ReadBlock(profile.clock.address, CLOCK_WORDS)
    words = await link.read(meter.unit_id, profile.read_function, block)
    try:
        year, month, day, hour, minute, second = words
        return datetime(year, month, day, hour, minute, second)
    except ValueError as error:  # a bad date, or not six words
        raise ImplausibleValue(f"clock registers {words} are not a time: {error}") from None


async def set_clock(link: BusLink, meter: MeterConfig, profile: Profile, at: datetime) -> None:
    """Set the meter's clock: a broadcast time set (DL/T 645) or a write of its registers."""
    if isinstance(profile, Dlt645Profile):
        # Broadcast: no meter answers; each one within its window takes the time.
        await link.dlt645(dlt645.broadcast_time_frame(at), reply=False)
        return
    assert profile.clock is not None
    values = [at.year, at.month, at.day, at.hour, at.minute, at.second]
    await link.write_many(meter.unit_id, profile.clock.address, values)
