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
    MeterProfile,
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
    purchase_not_due,
    purchase_words,
    registers_from_blocks,
    relay_command_value,
)
from collector.domain.clock import ClockJudgement, judge_clock
from collector.domain.decoding import THOUSANDTH
from collector.domain.profiles import TouPeriod
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
    unit_id = meter.unit_id
    if len(plan) == 1:  # most models: one read (no comprehension's frame per poll)
        block = plan[0]
        words = await link.read(unit_id, profile.read_function, block)
        return decode_reading(profile, registers_from_blocks(plan, (words,)))
    results = [await link.read(unit_id, profile.read_function, block) for block in plan]
    return decode_reading(profile, registers_from_blocks(plan, results))


def _refused(error: dlt645.MeterRefused) -> MeterRefused:
    """A meter's refusal; a command it refused is never sent again unchanged.

    A wrong password counts toward the meter's lock-out. Any other refusal of a command
    comes back the same for the same bytes: its deadline came from the meter's own clock.
    """
    if error.password:
        detail = f"meter refused the password (error byte {error.code:#04x}); not sent again"
    else:
        detail = f"meter refused with error byte {error.code:#04x}"
    return MeterRefused(error.code, final=True, detail=detail)


async def _exchange(link: BusLink, request: bytes, *, address: str, control: int) -> bytes:
    """Send one DL/T 645 request; return the data of the meter's answer."""
    frame = await link.dlt645(request)
    assert frame is not None
    try:
        return dlt645.check_reply(frame, address=address, control=control)
    except dlt645.GarbledFrame as error:
        raise MeterGarbled(f"garbled reply: {error}") from None
    except dlt645.MeterRefused as error:
        raise _refused(error) from None


async def _read_item(link: BusLink, address: str, identifier: int) -> bytes:
    frame = await link.dlt645(dlt645.read_frame(address, identifier))
    assert frame is not None
    try:
        return dlt645.read_value(frame, address=address, identifier=identifier)
    except dlt645.GarbledFrame as error:
        raise MeterGarbled(f"garbled reply: {error}") from None
    except dlt645.MeterRefused as error:
        raise _refused(error) from None


async def _read_optional(link: BusLink, address: str, identifier: int) -> bytes | None:
    """Read an item not every meter has: None if the meter says it has no such data."""
    try:
        return await _read_item(link, address, identifier)
    except MeterRefused as refusal:
        if refusal.code & dlt645.ERR_NO_DATA:
            return None
        raise


async def _read_energy(
    link: BusLink, address: str, profile: Dlt645Profile
) -> tuple[Decimal, dict[TouPeriod, Decimal] | None]:
    """Return the total and (if the profile reads them) the four tariff-rate registers."""
    signed = profile.energy == "combined"  # combined active energy carries a sign bit
    base = dlt645.COMBINED_ENERGY if signed else dlt645.FORWARD_ENERGY
    if not profile.tou:
        return dlt645.decode_energy(await _read_item(link, address, base), signed=signed), None
    block = (
        await _read_optional(link, address, base | dlt645.BLOCK) if profile.block_reads else None
    )
    if block is not None:
        total, *rates = dlt645.decode_energies(block, signed=signed)
    else:
        total = dlt645.decode_energy(await _read_item(link, address, base), signed=signed)
        raw = [
            await _read_optional(link, address, base + dlt645.RATE_STEP * rate)
            for rate in range(1, 5)
        ]
        if any(value is None for value in raw):
            return total, None  # a single-rate meter: its total is all there is
        rates = [dlt645.decode_energy(value, signed=signed) for value in raw if value is not None]
    periods: tuple[TouPeriod, ...] = ("sharp", "peak", "flat", "valley")
    return total, {p: kwh.quantize(THOUSANDTH) for p, kwh in zip(periods, rates, strict=True)}


async def _read_dlt645(link: BusLink, address: str, profile: Dlt645Profile) -> DecodedReading:
    try:
        energy, tou = await _read_energy(link, address, profile)
        power = voltage = current = None
        if profile.instantaneous:
            # Each is optional: a meter that has no such item still gives a reading.
            raw = await _read_optional(link, address, dlt645.POWER_TOTAL)
            # kW to the thousandth, as every reading keeps it (the register has 4 places).
            power = None if raw is None else dlt645.decode_power(raw).quantize(THOUSANDTH)
            raw = await _read_optional(link, address, dlt645.VOLTAGE_A)
            voltage = None if raw is None else dlt645.decode_voltage(raw)
            raw = await _read_optional(link, address, dlt645.CURRENT_A)
            # The sign tells the direction, which the power's sign already says.
            current = None if raw is None else abs(dlt645.decode_current(raw))
        relay: RelayState | None = None
        if profile.relay:
            status = await _read_item(link, address, dlt645.STATUS_WORD_3)
            relay = "open" if dlt645.relay_open(status) else "closed"
    except dlt645.GarbledFrame as error:
        raise ImplausibleValue(str(error)) from None
    reading = DecodedReading(
        energy_kwh=energy.quantize(THOUSANDTH),
        power_kw=power,
        voltage_v=voltage,
        current_a=current,
        relay=relay,
        tou_kwh=tou,
    )
    check_plausible(reading, profile)
    return reading


async def read_identity(link: BusLink, meter: MeterConfig, profile: Profile) -> str | None:
    """Return what identifies the device answering at the meter's address, if readable.

    DL/T 645: the meter number (04000402) where the profile reads it, else the address the
    answer carries. None for models with nothing to read.
    """
    if not isinstance(profile, Dlt645Profile):
        return None
    if profile.identity:
        value = await _read_item(link, meter.address, dlt645.METER_NUMBER)
        try:
            return dlt645.decode_meter_number(value)
        except dlt645.GarbledFrame as error:
            raise ImplausibleValue(str(error)) from None
    frame = await link.dlt645(dlt645.read_frame(meter.address, dlt645.STATUS_WORD_3))
    assert frame is not None
    return frame.address


def _control_frame(
    meter: MeterConfig, profile: Dlt645Profile, command: int, now: datetime
) -> bytes:
    password, operator = dlt645.credentials(profile.password, profile.operator)
    return dlt645.remote_control_frame(
        meter.address,
        command=command,
        password=password,
        operator=operator,
        expires=now + CONTROL_VALIDITY,
    )


async def switch_relay(
    link: BusLink, meter: MeterConfig, profile: Profile, action: RelayAction, *, now: datetime
) -> RelayState:
    """Trip or close the relay and return the state the meter then reports.

    ``now`` is the meter's local time (a DL/T 645 control frame carries its expiry).
    """
    if isinstance(profile, Dlt645Profile):
        close = dlt645.DIRECT_CLOSE if profile.close_command == "1C" else dlt645.CLOSE_ALLOWED
        command = dlt645.TRIP if action == "trip" else close
        await _exchange(
            link,
            _control_frame(meter, profile, command, now),
            address=meter.address,
            control=dlt645.REMOTE_CONTROL,
        )
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
    command = dlt645.HOLD_ON if on else dlt645.HOLD_OFF
    await _exchange(
        link,
        _control_frame(meter, profile, command, now),
        address=meter.address,
        control=dlt645.REMOTE_CONTROL,
    )
    status = await _read_item(link, meter.address, dlt645.STATUS_WORD_3)
    try:
        return dlt645.hold_power_on(status)
    except dlt645.GarbledFrame as error:
        raise ImplausibleValue(str(error)) from None


class PurchaseNotDue(Exception):
    """The meter shows the purchase's count already: nothing was written."""


async def push_purchase(
    link: BusLink, meter: MeterConfig, profile: Profile, purchase: Purchase
) -> tuple[Decimal, int]:
    """Read the meter's count, write a purchase (one FC16 request) and return the (credit,
    count) the meter then shows.

    PurchaseNotDue if the meter has the count already (see ``purchase_not_due``); MeterRefused
    is the meter refusing the purchase count; RefusedCommand a model that keeps no local
    credit or values its registers cannot hold.
    """
    model = local_credit_profile(profile)
    address, words = purchase_words(model, purchase)
    _credit, count_before = await read_local_credit(link, meter, model)
    not_due = purchase_not_due(purchase.count, count_before)
    if not_due is not None:
        raise PurchaseNotDue(not_due)
    await link.write_many(meter.unit_id, address, words)
    return await read_local_credit(link, meter, model)


async def read_local_credit(
    link: BusLink, meter: MeterConfig, model: MeterProfile
) -> tuple[Decimal, int]:
    """Return the (credit, purchase count) a local-prepaid meter shows now."""
    blocks = local_credit_blocks(model)
    results = [await link.read(meter.unit_id, model.read_function, block) for block in blocks]
    return decode_local_credit(model, registers_from_blocks(blocks, results))


def has_clock(profile: Profile) -> bool:
    """True if the collector keeps this model's clock."""
    return profile.clock if isinstance(profile, Dlt645Profile) else profile.clock is not None


def judge_meter_clock(
    profile: Profile, meter_time: datetime, reference: datetime
) -> ClockJudgement:
    """What to do about this meter's clock, within what its protocol allows."""
    if isinstance(profile, Dlt645Profile):
        return judge_clock(
            meter_time,
            reference,
            tolerance_seconds=profile.clock_tolerance_seconds,
            max_set_seconds=profile.clock_max_set_seconds,
            broadcast_seconds=profile.clock_broadcast_seconds,
            can_set=profile.clock_write,
        )
    assert profile.clock is not None
    return judge_clock(
        meter_time,
        reference,
        tolerance_seconds=profile.clock.tolerance_seconds,
        max_set_seconds=profile.clock.max_set_seconds,
    )


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


async def set_clock(
    link: BusLink, meter: MeterConfig, profile: Profile, at: datetime, *, broadcast: bool
) -> None:
    """Set the meter's clock: a DL/T 645 broadcast time set or programmed time set, or a
    write of its registers (Modbus). The caller reads it back: a broadcast gets no answer."""
    if isinstance(profile, Dlt645Profile):
        if broadcast:
            # Every meter on the bus within its window takes the time; none answers.
            await link.dlt645(dlt645.broadcast_time_frame(at), reply=False)
            return
        password, operator = dlt645.credentials(profile.password, profile.operator)
        date, time = dlt645.time_set_frames(meter.address, at, password=password, operator=operator)
        # Time last: the seconds it carries are the ones that matter most.
        await _exchange(link, date, address=meter.address, control=dlt645.WRITE)
        await _exchange(link, time, address=meter.address, control=dlt645.WRITE)
        return
    assert profile.clock is not None
    values = [at.year, at.month, at.day, at.hour, at.minute, at.second]
    await link.write_many(meter.unit_id, profile.clock.address, values)
