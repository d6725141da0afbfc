"""Meter profile files: the shipped ones load; a bad file gets a message naming the problem."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from collector.domain import (
    Dlt645Profile,
    MeterProfile,
    ProfileError,
    decode_reading,
    encode_value,
    parse_profile,
    plan_profile_reads,
)
from collector.profiles import load_profiles

DOCS = Path(__file__).parents[3] / "docs" / "profiles.md"

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
            "relay.command is required (only a secure meter goes without)",
        ),
        (
            GOOD + '[secure]\nenvelope = 0x100\nresult = 0x40\ncommands = ["trip"]\n',
            "secure.commands trips or closes: relay.state is needed",
        ),
        (
            GOOD + "[relay.state]\naddress = 0x10\nopen = 1\nclosed = 0\n"
            "[relay.command]\naddress = 0x11\ntrip = 0x1A\nclose = 0x1B\n"
            '[secure]\nenvelope = 0x100\nresult = 0x40\ncommands = ["trip"]\n',
            "sealed envelopes only: remove relay.command",
        ),
        (
            GOOD + '[secure]\nenvelope = 0x100\nresult = 0x101\ncommands = ["credit"]\n',
            "result overlaps the envelope block",
        ),
        (GOOD + '[pt_ratio]\naddress = 0x8D\ntype = "uint16"\n', "pt_ratio and ct_ratio go"),
        (GOOD.replace('name = "test-meter"', 'name = "x"\nprotocol = "iec"'), "'modbus', 'dlt645'"),
        ('name = "x"\nprotocol = "dlt645"\npassword = "12"\n', "password: String should match"),
        ('name = "x"\nprotocol = "dlt645"\nenergy = "reverse"\n', "energy: Input should be"),
        ('name = "x"\nprotocol = "dlt645"\nread_function = 3\n', "read_function: Extra inputs"),
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


def test_every_market_model_ships_and_is_documented() -> None:
    profiles = load_profiles()
    assert set(profiles) == {
        "reference-prepaid",
        "acrel-ddsy1352",
        "acrel-adl400",
        "eastron-sdm120",
        "eastron-sdm630",
        "chint-ddsu666",
        "chint-dtsu666",
        "dlt645-2007",
        "dlt645-2007-base",
        "secure-prepaid",
    }
    documented = DOCS.read_text(encoding="utf-8")
    for name, profile in profiles.items():
        assert f"| `{name}` |" in documented, name
        if name not in ("reference-prepaid", "secure-prepaid"):  # the project's own
            assert profile.unverified, f"{name} lists nothing unverified"
    assert any("0x101E" in fact for fact in profiles["chint-dtsu666"].unverified)
    dlt = profiles["dlt645-2007"]
    assert isinstance(dlt, Dlt645Profile)
    assert (dlt.has_relay, dlt.clock, dlt.clock_max_set_seconds) == (True, True, 600)
    base = profiles["dlt645-2007-base"]
    assert isinstance(base, Dlt645Profile)
    assert (base.close_command, base.clock_max_set_seconds) == ("1B", 3600)
    reference = profiles["reference-prepaid"]
    assert isinstance(reference, MeterProfile)
    assert reference.clock is not None
    assert reference.clock.address == 0x0020


def test_pt_and_ct_ratios_scale_energy() -> None:
    profile = load_profiles()["acrel-adl400"]
    assert isinstance(profile, MeterProfile)
    assert profile.pt_ratio is not None
    assert profile.ct_ratio is not None
    registers = dict.fromkeys(range(0, 0x100), 0)
    energy = profile.registers["energy_kwh"]
    for offset, word in enumerate(encode_value(Decimal("12.34"), energy, "big")):
        registers[energy.address + offset] = word
    registers[profile.pt_ratio.address] = 10  # 10 kV / 100 V
    registers[profile.ct_ratio.address] = 40  # 200 A / 5 A
    assert decode_reading(profile, registers).energy_kwh == Decimal("4936.000")
    # The ratio registers come in the same poll: two blocks, energy..current and PT..CT.
    assert [(b.address, b.count) for b in plan_profile_reads(profile)] == [
        (0x0000, 2),
        (0x0061, 4),
        (0x008D, 2),
    ]
