"""Registers to Decimals for each profile, word order, and refusal of impossible values."""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Mapping
from decimal import Decimal

import pytest
from collector.domain import (
    DecodedReading,
    ImplausibleValue,
    MeterProfile,
    RegisterSpec,
    check_plausible,
    decode_reading,
    decode_value,
    encode_value,
    value_reader,
)
from collector.domain.decoding import ReadingDecoder, exact_reader
from collector.profiles import load_profiles
from hypothesis import event, given, settings
from hypothesis import strategies as st

PROFILES = load_profiles()


def f32(value: float) -> list[int]:
    return list(struct.unpack(">HH", struct.pack(">f", value)))


def at(address: int, values: list[int]) -> dict[int, int]:
    return dict(enumerate(values, start=address))


def reference_registers() -> dict[int, int]:
    registers = {address: 0 for address in range(0x16)}
    registers.update(at(0x0000, [0x0001, 0xE240]))  # 123456 -> 1234.56 kWh
    registers.update(at(0x0002, [0, 1000]))
    registers.update(at(0x0004, [0, 2000]))
    registers.update(at(0x0006, [0, 3000]))
    registers.update(at(0x0008, [0x0001, 0x8A10]))  # 100880
    registers.update({0x000A: 2201, 0x000B: 1523})
    registers.update(at(0x000C, [0, 3210]))
    registers.update(at(0x0012, [0xFFFF, 0xFB2E]))  # INT32 -1234 -> -12.34 yuan (used beyond 0)
    registers[0x0014] = 7  # purchases taken
    return registers


def with_relay_word(word: int) -> dict[int, int]:
    registers = reference_registers()
    registers[0x0010] = word
    return registers


def test_reference_prepaid() -> None:
    reading = decode_reading(PROFILES["reference-prepaid"], reference_registers())
    assert reading == DecodedReading(
        energy_kwh=Decimal("1234.560"),
        power_kw=Decimal("3.210"),
        voltage_v=Decimal("220.100"),
        current_a=Decimal("15.230"),
        relay="closed",
        tou_kwh={
            "sharp": Decimal("10.000"),
            "peak": Decimal("20.000"),
            "flat": Decimal("30.000"),
            "valley": Decimal("1008.800"),
        },
        local_credit=Decimal("-12.34"),
        purchase_count=7,
    )
    assert decode_reading(PROFILES["reference-prepaid"], with_relay_word(1)).relay == "open"


def test_reference_negative_power_is_int32() -> None:
    registers = reference_registers()
    registers.update(at(0x000C, [0xFFFF, 0xFF38]))  # -200 W (export)
    assert decode_reading(PROFILES["reference-prepaid"], registers).power_kw == Decimal("-0.200")


def test_acrel_ddsy1352() -> None:
    registers = {address: 0 for address in range(0x0E)}
    registers.update(at(0x0000, [0x0098, 0x967F]))  # 9999999 -> 99999.99 kWh
    registers.update({0x000B: 2305, 0x000C: 812, 0x000D: 0xFF9C})  # -0.100 kW
    reading = decode_reading(PROFILES["acrel-ddsy1352"], registers)
    assert reading.energy_kwh == Decimal("99999.990")
    assert reading.power_kw == Decimal("-0.100")
    assert reading.voltage_v == Decimal("230.500")
    assert reading.current_a == Decimal("8.120")
    assert reading.relay is None


def test_eastron_sdm120_floats_become_decimals_at_a_thousandth() -> None:
    registers = {
        **at(0x0000, f32(229.7)),
        **at(0x0006, f32(4.25)),
        **at(0x000C, f32(976.5)),
        **at(0x0048, f32(12345.678)),
    }
    reading = decode_reading(PROFILES["eastron-sdm120"], registers)
    assert reading.energy_kwh == Decimal("12345.678")
    assert reading.power_kw == Decimal("0.976")  # 976.5 W, half-even to the watt
    assert reading.voltage_v == Decimal("229.700")
    assert reading.relay is None


def test_float32_word_order() -> None:
    spec = RegisterSpec(address=0, type="float32", scale=Decimal(1))
    high, low = f32(1.5)
    assert decode_value([high, low], spec, "big") == Decimal("1.5")
    assert decode_value([low, high], spec, "little") == Decimal("1.5")
    assert decode_value([low, high], spec, "big") != Decimal("1.5")


def test_uint32_word_order() -> None:
    spec = RegisterSpec(address=0, type="uint32", scale=Decimal("0.01"))
    assert decode_value([0x0001, 0x0002], spec, "big") == Decimal("655.38")
    assert decode_value([0x0002, 0x0001], spec, "little") == Decimal("655.38")


@given(raw=st.integers(min_value=0, max_value=2**32 - 1), order=st.sampled_from(["big", "little"]))
def test_uint32_hundredths_round_trip(raw: int, order: str) -> None:
    spec = RegisterSpec(address=0, type="uint32", scale=Decimal("0.01"))
    value = Decimal(raw) / 100
    words = encode_value(value, spec, order)  # type: ignore[arg-type]
    assert decode_value(words, spec, order) == value  # type: ignore[arg-type]


@given(raw=st.integers(min_value=-(2**31), max_value=2**31 - 1))
def test_int32_watts_round_trip(raw: int) -> None:
    spec = RegisterSpec(address=0, type="int32", scale=Decimal("0.001"))
    value = Decimal(raw) / 1000
    assert decode_value(encode_value(value, spec, "big"), spec, "big") == value


@given(value=st.floats(min_value=0, max_value=999_999, allow_nan=False, width=32))
def test_float32_decodes_to_its_shortest_decimal(value: float) -> None:
    spec = RegisterSpec(address=0, type="float32", scale=Decimal(1))
    decoded = decode_value(f32(value), spec, "big")
    assert math.isclose(float(decoded), value, rel_tol=1e-7, abs_tol=1e-30)


@pytest.mark.parametrize(
    ("energy_words", "message"),
    [
        (f32(math.nan), "not a number"),
        (f32(math.inf), "not a number"),
        (f32(-1.0), "negative"),
        (f32(1e12), "beyond the register"),
    ],
)
def test_garbled_float_energy_is_never_a_reading(energy_words: list[int], message: str) -> None:
    registers = {
        **at(0x0000, f32(230.0)),
        **at(0x0006, f32(1.0)),
        **at(0x000C, f32(230.0)),
        **at(0x0048, energy_words),
    }
    with pytest.raises(ImplausibleValue, match=message):
        decode_reading(PROFILES["eastron-sdm120"], registers)


def test_a_garbled_high_word_is_refused() -> None:
    registers = reference_registers()
    registers[0x0000] = 0x8001  # 21 million kWh on a household meter
    with pytest.raises(ImplausibleValue, match=r"beyond the register's 999999\.99 kWh"):
        decode_reading(PROFILES["reference-prepaid"], registers)


def test_impossible_power_and_relay_values_are_refused() -> None:
    registers = reference_registers()
    registers.update(at(0x000C, [0x0010, 0]))  # about 1 MW
    with pytest.raises(ImplausibleValue, match="power"):
        decode_reading(PROFILES["reference-prepaid"], registers)
    with pytest.raises(ImplausibleValue, match="neither open nor closed"):
        decode_reading(PROFILES["reference-prepaid"], with_relay_word(7))


def test_plausibility_of_each_quantity() -> None:
    profile: MeterProfile = PROFILES["reference-prepaid"]
    good = DecodedReading(energy_kwh=Decimal("1.000"), power_kw=Decimal("1.000"))
    check_plausible(good, profile)
    for bad in (
        DecodedReading(energy_kwh=Decimal("-0.010")),
        DecodedReading(energy_kwh=Decimal(1), voltage_v=Decimal(5000)),
        DecodedReading(energy_kwh=Decimal(1), current_a=Decimal(-1)),
        DecodedReading(energy_kwh=Decimal(1), tou_kwh={"peak": Decimal(-1)}),
    ):
        with pytest.raises(ImplausibleValue):
            check_plausible(bad, profile)


@given(
    kind=st.sampled_from(["uint16", "int16", "uint32", "int32"]),
    words=st.lists(st.integers(0, 0xFFFF), min_size=2, max_size=2),
    order=st.sampled_from(["big", "little"]),
)
def test_integer_registers_decode_as_the_struct_formats_say(
    kind: str, words: list[int], order: str
) -> None:
    """The arithmetic fast path agrees with the standard layouts, sign and word order."""
    spec = RegisterSpec(address=0, type=kind, scale=Decimal(1))  # type: ignore[arg-type]
    used = words[: spec.words]
    ordered = used if order == "big" else list(reversed(used))
    fmt = {"uint16": ">H", "int16": ">h", "uint32": ">I", "int32": ">i"}[kind]
    expected = struct.unpack(fmt, struct.pack(f">{len(ordered)}H", *ordered))[0]
    assert decode_value(used, spec, order) == Decimal(expected)  # type: ignore[arg-type]


@given(
    kind=st.sampled_from(["uint16", "int16", "uint32", "int32", "float32"]),
    words=st.lists(st.integers(0, 0xFFFF), min_size=2, max_size=2),
    order=st.sampled_from(["big", "little"]),
    address=st.integers(0, 0xFFFE),
    scale=st.sampled_from(["1", "0.1", "0.01", "0.001", "2.5"]),
)
def test_a_compiled_value_reader_decodes_as_decode_value(
    kind: str, words: list[int], order: str, address: int, scale: str
) -> None:
    """What each poll runs (value_reader) is decode_value, worked out once per register."""
    spec = RegisterSpec(address=address, type=kind, scale=Decimal(scale))  # type: ignore[arg-type]
    used = words[: spec.words]
    registers = dict(enumerate(used, start=address))
    try:
        expected: Decimal | str = decode_value(used, spec, order)  # type: ignore[arg-type]
    except ImplausibleValue as error:
        expected = str(error)
    try:
        got: Decimal | str = value_reader(spec, order)(registers)  # type: ignore[arg-type]
    except ImplausibleValue as error:
        got = str(error)
    assert str(got) == str(expected)  # the same digits and exponent, not just equal


@settings(max_examples=400)
@given(data=st.data())
def test_every_profile_decodes_a_poll_as_its_values_say(data: st.DataObject) -> None:
    """Any register contents: the reading holds each value decoded alone (scaled by PT x CT
    where the profile has them, to the thousandth), or the poll is refused."""
    profile: MeterProfile = data.draw(
        st.sampled_from([p for p in PROFILES.values() if isinstance(p, MeterProfile)])
    )
    # Zero high words half the time: otherwise nearly every energy is beyond the register.
    word = st.one_of(st.just(0), st.integers(0, 0xFFFF))
    registers = {
        address + i: data.draw(word) for address, words in profile.spans() for i in range(words)
    }
    if profile.relay is not None:
        state = profile.relay.state
        registers[state.address] = data.draw(st.sampled_from([state.open, state.closed, 7]))
    order = profile.word_order

    def alone(spec: RegisterSpec) -> Decimal:
        span = range(spec.address, spec.address + spec.words)
        return decode_value([registers[a] for a in span], spec, order)

    try:
        reading = decode_reading(profile, registers)
    except ImplausibleValue:
        event("refused")
        return  # refusal is checked by the plausibility tests; here, what passes
    event(f"decoded {profile.name}")
    ratio = Decimal(1)
    if profile.pt_ratio is not None and profile.ct_ratio is not None:
        ratio = alone(profile.pt_ratio) * alone(profile.ct_ratio)
    thousandth = Decimal("0.001")
    assert str(reading.energy_kwh) == str(
        (alone(profile.registers["energy_kwh"]) * ratio).quantize(thousandth)
    )
    for period, spec in profile.tou.items():
        assert reading.tou_kwh is not None
        assert str(reading.tou_kwh[period]) == str((alone(spec) * ratio).quantize(thousandth))
    if "power_kw" in profile.registers:
        power = alone(profile.registers["power_kw"]).quantize(thousandth)
        assert str(reading.power_kw) == str((power * ratio).quantize(thousandth))
    for quantity in ("voltage_v", "current_a"):
        if quantity in profile.registers:
            expected = alone(profile.registers[quantity]).quantize(thousandth)  # type: ignore[index]
            assert str(getattr(reading, quantity)) == str(expected)
    if profile.local_credit is not None:
        assert reading.local_credit == alone(profile.local_credit.credit).quantize(Decimal("0.01"))
        assert reading.purchase_count == int(alone(profile.local_credit.count))


def _outcome(
    decode: Callable[[Mapping[int, int]], DecodedReading], registers: dict[int, int]
) -> str:
    try:
        return repr(decode(registers))  # every Decimal's digits and exponent, not just value
    except ImplausibleValue as error:
        return f"refused: {error}"


@settings(max_examples=400)
@given(data=st.data())
def test_the_exact_fast_decoding_gives_the_general_decodings_reading(data: st.DataObject) -> None:
    """A profile whose values are integers scaled by powers of ten is decoded without a
    multiply or a quantize per value (what every reference poll runs): the same reading,
    to the digit and exponent, as the general decoding, or the same refusal."""
    profile: MeterProfile = data.draw(
        st.sampled_from([p for p in PROFILES.values() if isinstance(p, MeterProfile)])
    )
    word = st.one_of(st.just(0), st.integers(0, 0xFFFF))
    registers = {
        address + i: data.draw(word) for address, words in profile.spans() for i in range(words)
    }
    if profile.relay is not None:
        state = profile.relay.state
        registers[state.address] = data.draw(st.sampled_from([state.open, state.closed, 7]))
    decoder = ReadingDecoder(profile)
    event(f"{profile.name}: {'exact' if decoder._exact is not None else 'general'}")
    assert _outcome(decoder, registers) == _outcome(decoder._decode, registers)


def test_the_reference_profile_takes_the_exact_decoding() -> None:
    """The shipped reference model's poll takes the fast path (or the test above is moot)."""
    profile = PROFILES["reference-prepaid"]
    assert isinstance(profile, MeterProfile)
    assert ReadingDecoder(profile)._exact is not None


@pytest.mark.parametrize("scale", ["0.1", "0.01", "0.001", "1", "10", "0.010"])
@pytest.mark.parametrize("kind", ["uint16", "int16", "uint32", "int32"])
def test_an_exact_reader_is_the_scaled_value_quantized(kind: str, scale: str) -> None:
    """Raw x factor at 10**-3 is the register scaled and quantized to the thousandth."""
    spec = RegisterSpec(address=0, type=kind, scale=Decimal(scale))
    found = exact_reader(spec, "big", 3)
    assert found is not None
    read, factor = found
    for words in ([0, 0], [0, 1], [0xFFFF, 0xFFFF], [0x8000, 0], [0x1234, 0x5678]):
        registers = dict(enumerate(words))
        expected = value_reader(spec, "big")(registers).quantize(Decimal("0.001"))
        assert repr(Decimal(read(registers) * factor).scaleb(-3)) == repr(expected)


def test_no_exact_reader_for_a_float_or_a_scale_not_a_power_of_ten() -> None:
    for kind, scale in (("float32", "0.01"), ("uint16", "2.5"), ("uint16", "0.0001")):
        spec = RegisterSpec(address=0, type=kind, scale=Decimal(scale))
        assert exact_reader(spec, "big", 3) is None


def test_a_float_too_large_to_keep_to_the_thousandth_is_refused_not_raised() -> None:
    """1e26 kW in a float32 power register: refused as implausible, like any garbage (the
    quantize would otherwise raise decimal's InvalidOperation out of the poll)."""
    profile: MeterProfile = PROFILES["chint-ddsu666"]
    registers = {address + i: 0 for address, words in profile.spans() for i in range(words)}
    registers.update(at(profile.registers["power_kw"].address, f32(1e26)))
    with pytest.raises(ImplausibleValue, match="beyond any meter's range"):
        decode_reading(profile, registers)
