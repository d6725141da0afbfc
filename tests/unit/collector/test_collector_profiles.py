"""Meter profile files: the shipped ones load; a bad file gets a message naming the problem."""

from __future__ import annotations

from pathlib import Path

import pytest
from collector.domain import ProfileError, parse_profile
from collector.profiles import load_profiles

GOOD = """
name = "test-meter"
read_function = 3
[registers.energy_kwh]
address = 0x0000
type = "uint32"
scale = "0.01"
"""


def test_the_shipped_profiles_load() -> None:
    profiles = load_profiles()
    assert {"reference-prepaid", "acrel-ddsy1352", "eastron-sdm120"} <= set(profiles)
    reference = profiles["reference-prepaid"]
    assert reference.relay is not None
    assert (reference.relay.command.trip, reference.relay.command.close) == (0x1A, 0x1B)
    assert set(reference.tou) == {"sharp", "peak", "flat", "valley"}
    assert not profiles["acrel-ddsy1352"].has_relay
    assert profiles["eastron-sdm120"].read_function == 4
    assert profiles["acrel-ddsy1352"].unverified


def test_a_minimal_profile_parses() -> None:
    profile = parse_profile(GOOD, source="test-meter.toml")
    assert profile.registers["energy_kwh"].words == 2
    assert str(profile.registers["energy_kwh"].scale) == "0.01"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name = ", "not valid TOML"),
        (GOOD.replace('"uint32"', '"uint64"'), "registers.energy_kwh.type"),
        (GOOD.replace('scale = "0.01"', "scale = 0.01"), "quoted string"),
        (GOOD.replace('scale = "0.01"', 'scale = "-1"'), "positive decimal"),
        (GOOD.replace("read_function = 3", "read_function = 6"), "read_function"),
        (GOOD.replace("address = 0x0000", "address = 0xFFFF"), "runs past register 0xFFFF"),
        (GOOD.replace("energy_kwh", "power_kw"), "energy_kwh is required"),
        (GOOD.replace("energy_kwh", "reactive_kvar"), "registers.reactive_kvar"),
        (GOOD + "colour = 'red'\n", "colour: Extra inputs are not permitted"),
        (
            GOOD + '[registers.power_kw]\naddress = 1\ntype = "int16"\n',
            "registers.power_kw overlaps registers.energy_kwh at 0x0001",
        ),
        (
            GOOD + "[relay.state]\naddress = 0x10\nopen = 1\nclosed = 1\n"
            "[relay.command]\naddress = 0x11\ntrip = 0x1A\nclose = 0x1B\n",
            "relay.state: Value error, open and closed must be different",
        ),
        (
            GOOD + "[relay.state]\naddress = 0x10\nopen = 1\nclosed = 0\n",
            "relay.command: Field required",
        ),
    ],
)
def test_a_bad_profile_is_refused_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(ProfileError) as refused:
        parse_profile(text, source="bad.toml")
    assert str(refused.value).startswith("bad.toml: ")
    assert message in str(refused.value)


def test_a_site_directory_adds_profiles_and_checks_file_names(tmp_path: Path) -> None:
    (tmp_path / "test-meter.toml").write_text(GOOD)
    assert "test-meter" in load_profiles(tmp_path)
    (tmp_path / "renamed.toml").write_text(GOOD)
    with pytest.raises(ProfileError, match="must match the file name 'renamed'"):
        load_profiles(tmp_path)
    with pytest.raises(ProfileError, match="not a directory"):
        load_profiles(tmp_path / "missing")
