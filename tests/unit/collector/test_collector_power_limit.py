"""Power limits and load alarms (issue 19): the profile capability, the limit's register
words, what a poll decodes, and the simulated meter that trips itself."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest
from collector.domain import (
    DecodedReading,
    MeterProfile,
    RefusedCommand,
    check_capable,
    decode_reading,
    plan_profile_reads,
    registers_from_blocks,
)
from collector.domain.commands import PlainCommandOpener, plain_envelope, supported_commands
from collector.domain.profiles import ProfileError, parse_profile
from collector.domain.secure import power_limit_read, power_limit_words
from collector.profiles import load_profiles
from simulator import SimClock, SimulatedMeter
from simulator.registers import REGISTER_MAPS, ModbusError

PROFILES = load_profiles()
START = datetime(2025, 1, 1, 19, 30)


def profile(name: str) -> MeterProfile:
    found = PROFILES[name]
    assert isinstance(found, MeterProfile)
    return found


class Field:
    """One simulated reference meter on a clock the test moves."""

    def __init__(self, base_load_kw: float) -> None:
        self.seconds = 0.0
        self.meter = SimulatedMeter(
            meter_id="DTU0001-01",
            unit_id=1,
            profile="reference-prepaid",
            base_load_kw=base_load_kw,
            clock=SimClock(start=START, monotonic=lambda: self.seconds),
        )

    def poll_later(self) -> DecodedReading:
        """A second later (the meter looks at its load when time has passed), one poll."""
        self.seconds += 1.0
        return poll(self.meter)


def poll(meter: SimulatedMeter) -> DecodedReading:
    shape = profile(meter.profile)
    blocks = plan_profile_reads(shape)
    register_map = REGISTER_MAPS[meter.profile]
    results = [register_map.read(meter, block.address, block.count) for block in blocks]
    return decode_reading(shape, registers_from_blocks(blocks, results))


def test_the_projects_prepaid_models_have_the_capability_and_others_are_refused() -> None:
    assert "power_limit" in supported_commands(profile("reference-prepaid"))
    assert "power_limit" in supported_commands(profile("secure-prepaid"))
    for name in ("eastron-sdm120", "acrel-ddsy1352"):
        assert "power_limit" not in supported_commands(PROFILES[name])
        with pytest.raises(RefusedCommand, match=f"profile {name} has no power limit"):
            check_capable(PROFILES[name], "power_limit")


def test_a_limit_is_written_in_hundredths_of_a_kw_and_one_that_does_not_fit_is_refused() -> None:
    shape = profile("reference-prepaid")
    assert power_limit_words(shape, Decimal("3.50")) == (0x000E, [0, 350])
    assert power_limit_read(shape, [0, 350]) == Decimal("3.50")
    for bad in (Decimal("3.505"), Decimal(0), Decimal("-1")):
        with pytest.raises(RefusedCommand, match="does not fit"):
            power_limit_words(shape, bad)
    with pytest.raises(RefusedCommand, match="has no power limit"):
        power_limit_words(profile("eastron-sdm120"), Decimal("3.50"))


def test_a_power_limit_envelope_carries_its_kw_and_only_it_does() -> None:
    expires = datetime(2099, 1, 1).astimezone()
    text = plain_envelope(
        meter_id="M1",
        action="power_limit",
        command_id="c1",
        expires_at=expires,
        power_limit_kw=Decimal("3.50"),
    )
    opened = PlainCommandOpener().open(text, meter_id="M1", now=START.astimezone())
    assert (opened.action, opened.power_limit_kw) == ("power_limit", Decimal("3.50"))
    without = plain_envelope(
        meter_id="M1", action="power_limit", command_id="c2", expires_at=expires
    )
    with pytest.raises(RefusedCommand, match="malformed"):
        PlainCommandOpener().open(without, meter_id="M1", now=START.astimezone())


def test_a_profile_names_its_alarm_bits_once_and_writes_the_limit_as_an_integer() -> None:
    base = (
        'name = "x"\nread_function = 3\n'
        '[registers.energy_kwh]\naddress = 0\ntype = "uint32"\n'
        '[power_limit.limit]\naddress = 10\ntype = "{type}"\n'
        "[power_limit.alarms]\nstate = 12\noverload_bit = 2\nmalicious_bit = {bit}\n"
    )
    parsed = parse_profile(base.format(type="uint32", bit=3), source="x.toml")
    assert "power_limit" in supported_commands(parsed)
    with pytest.raises(ProfileError, match="different bits"):
        parse_profile(base.format(type="uint32", bit=2), source="x.toml")
    with pytest.raises(ProfileError, match="not float32"):
        parse_profile(base.format(type="float32", bit=3), source="x.toml")


def test_the_meter_trips_itself_above_its_limit_and_a_poll_reads_the_alarm() -> None:
    field = Field(base_load_kw=0.5)
    meter = field.meter
    register_map = REGISTER_MAPS["reference-prepaid"]
    first = poll(meter)
    assert (first.power_limit_kw, first.load_alarm) == (None, None)

    register_map.write(meter, 0x000E, [0, 200])  # 2.00 kW
    within = field.poll_later()
    assert (within.power_limit_kw, within.load_alarm, within.relay) == (
        Decimal("2.00"),
        None,
        "closed",
    )

    meter.base_load_kw = 10.0
    over = field.poll_later()
    assert (over.load_alarm, over.relay) == ("overload", "open")
    assert meter.overload

    # A close re-arms the protection: the alarm is gone, and back at once if the load is.
    meter.relay = "closed"
    assert not meter.overload
    assert field.poll_later().load_alarm == "overload"
    meter.base_load_kw = 0.5
    meter.relay = "closed"
    assert field.poll_later().load_alarm is None

    # A resistive load is recognised whatever the limit: the malicious-load alarm.
    meter.resistive_load_kw = 1.0
    seen = field.poll_later()
    assert (seen.load_alarm, seen.relay) == ("malicious_load", "open")

    # A limit is written whole; zero lifts it.
    with pytest.raises(ModbusError):
        register_map.write(meter, 0x000F, [100])
    register_map.write(meter, 0x000E, [0, 0])
    assert meter.power_limit_kw is None
