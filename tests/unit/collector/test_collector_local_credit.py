"""Local-prepaid meters in the collector: the profile capability and its validation, the
purchase a credit command writes, the envelope that seals it, and judging the read-back."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from collector.domain import (
    MeterProfile,
    OpenedCommand,
    PlainCommandOpener,
    ProfileError,
    Purchase,
    ReadBlock,
    RefusedCommand,
    check_capable,
    check_purchase_matches,
    decode_local_credit,
    local_credit_blocks,
    parse_profile,
    plain_envelope,
    purchase_landed,
    purchase_not_due,
    purchase_words,
)
from collector.profiles import load_profiles
from control.domain import CommandToSeal, PlainCommandSealer
from hypothesis import given
from hypothesis import strategies as st

PROFILES = load_profiles()
REFERENCE = PROFILES["reference-prepaid"]
NOW = datetime(2025, 5, 1, 8, 0, tzinfo=UTC)

GOOD = """
name = "local-meter"
read_function = 3
max_gap = 4
[registers.energy_kwh]
address = 0x0000
type = "uint32"
scale = "0.01"
[local_credit.credit]
address = 0x0002
type = "int32"
scale = "0.01"
[local_credit.count]
address = 0x0004
type = "uint16"
[local_credit.purchase_amount]
address = 0x0040
type = "uint32"
scale = "0.01"
[local_credit.purchase_count]
address = 0x0042
type = "uint16"
"""


def test_the_reference_profile_keeps_local_credit() -> None:
    assert isinstance(REFERENCE, MeterProfile)
    spec = REFERENCE.local_credit
    assert spec is not None
    assert (spec.credit.address, spec.credit.type, spec.credit.scale) == (
        0x0012,
        "int32",
        Decimal("0.01"),
    )
    assert (spec.count.address, spec.purchase_amount.address) == (0x0014, 0x0030)
    assert spec.purchase_count.address == 0x0032
    assert REFERENCE.has_local_credit
    assert not PROFILES["acrel-ddsy1352"].has_local_credit
    assert not PROFILES["dlt645-2007"].has_local_credit


def test_a_profile_with_local_credit_parses() -> None:
    profile = parse_profile(GOOD, source="local-meter.toml")
    assert isinstance(profile, MeterProfile)
    # Credit and count are read with the energy each poll.
    assert (0x0002, 2) in profile.spans()
    assert (0x0004, 1) in profile.spans()
    assert local_credit_blocks(profile) == [ReadBlock(0x0002, 3)]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ('[local_credit.count]\naddress = 0x0004\ntype = "uint16"', "[local_credit.x]"),
            "local_credit.count: Field required",
        ),
        (
            (
                '[local_credit.count]\naddress = 0x0004\ntype = "uint16"',
                '[local_credit.count]\naddress = 0x0004\ntype = "int16"',
            ),
            "count: a purchase count is a uint16 or uint32 with scale 1",
        ),
        (
            (
                '[local_credit.count]\naddress = 0x0004\ntype = "uint16"',
                '[local_credit.count]\naddress = 0x0004\ntype = "uint16"\nscale = "0.1"',
            ),
            "count: a purchase count is a uint16 or uint32 with scale 1",
        ),
        (
            ('address = 0x0040\ntype = "uint32"', 'address = 0x0040\ntype = "float32"'),
            "purchase_amount: an amount is written as an integer, not float32",
        ),
        (
            ("address = 0x0042", "address = 0x0043"),
            "purchase_count must follow purchase_amount: one FC16 write carries both",
        ),
        (
            ("[local_credit.credit]\naddress = 0x0002", "[local_credit.credit]\naddress = 0x0001"),
            "local_credit.credit overlaps registers.energy_kwh at 0x0001",
        ),
        (
            (
                'address = 0x0040\ntype = "uint32"\nscale = "0.01"\n'
                "[local_credit.purchase_count]\naddress = 0x0042",
                'address = 0x0003\ntype = "uint32"\nscale = "0.01"\n'
                "[local_credit.purchase_count]\naddress = 0x0005",
            ),
            "local_credit.purchase_amount overlaps local_credit.credit at 0x0003",
        ),
        (
            ('scale = "0.01"\n[local_credit.count]', "scale = 0.01\n[local_credit.count]"),
            "quoted string",
        ),
        (("[local_credit.count]", "colour = 'red'\n[local_credit.count]"), "colour: Extra"),
    ],
)
def test_a_bad_local_credit_block_is_refused_clearly(change: tuple[str, str], message: str) -> None:
    old, new = change
    assert old in GOOD
    with pytest.raises(ProfileError) as refused:
        parse_profile(GOOD.replace(old, new, 1), source="bad.toml")
    assert str(refused.value).startswith("bad.toml: ")
    assert message in str(refused.value)


def test_a_purchase_is_one_block_amount_then_count() -> None:
    address, words = purchase_words(REFERENCE, Purchase(Decimal("50.00"), 5))
    assert address == 0x0030
    assert words == [0, 5000, 5]
    big = purchase_words(REFERENCE, Purchase(Decimal("1000000.01"), 65535))[1]
    assert big == [0x05F5, 0xE101, 0xFFFF]


@pytest.mark.parametrize(
    ("purchase", "reason"),
    [
        (Purchase(Decimal("0.005"), 1), "not a positive multiple of 0.01"),
        (Purchase(Decimal("0"), 1), "not a positive multiple"),
        (Purchase(Decimal("-5"), 1), "not a positive multiple"),
        (Purchase(Decimal("21474836.48"), 1), "does not fit a int32"),
        (Purchase(Decimal("1"), 65536), "purchase count 65536 does not fit a uint16"),
        (Purchase(Decimal("1"), 0), "purchase count 0 does not fit"),
    ],
)
def test_a_purchase_the_registers_cannot_hold_is_refused(purchase: Purchase, reason: str) -> None:
    with pytest.raises(RefusedCommand, match=reason):
        purchase_words(REFERENCE, purchase)


def test_a_model_without_local_credit_takes_no_purchase() -> None:
    with pytest.raises(RefusedCommand, match="keeps no local credit"):
        purchase_words(PROFILES["acrel-ddsy1352"], Purchase(Decimal(1), 1))
    with pytest.raises(RefusedCommand, match="keeps no local credit"):
        check_capable(PROFILES["eastron-sdm120"], "credit")
    with pytest.raises(RefusedCommand, match="has no relay control"):
        check_capable(PROFILES["eastron-sdm120"], "trip")
    check_capable(REFERENCE, "credit")
    check_capable(REFERENCE, "close")


@given(
    fen=st.integers(min_value=1, max_value=0x7FFFFFFF),
    count=st.integers(min_value=1, max_value=0xFFFF),
)
def test_what_is_written_reads_back_as_the_same_purchase(fen: int, count: int) -> None:
    assert isinstance(REFERENCE, MeterProfile)
    amount = Decimal(fen).scaleb(-2)
    address, words = purchase_words(REFERENCE, Purchase(amount, count))
    registers = dict.fromkeys(range(0x0012, 0x0015), 0)
    # A meter that took it shows the amount as its credit and the count as its own.
    registers[0x0012], registers[0x0013] = words[0], words[1]
    registers[0x0014] = words[2]
    assert address == 0x0030
    assert decode_local_credit(REFERENCE, registers) == (amount, count)


def test_the_read_back_count_says_whether_the_purchase_landed() -> None:
    purchase = Purchase(Decimal("50.00"), 5)
    assert purchase_landed(purchase, 5) is None
    assert purchase_landed(purchase, 4) == "purchase count is 4 after pushing purchase 5"


def test_a_purchase_is_not_written_to_a_meter_that_shows_its_count_already() -> None:
    # Its next count: written. Behind: written, and the meter refuses it (final).
    assert purchase_not_due(5, 4) is None
    assert purchase_not_due(5, 2) is None
    # Its count or beyond: "already have it" would add nothing, whoever took the count.
    assert purchase_not_due(5, 5) == (
        "meter already shows purchase count 5; purchase 5 not written"
    )
    assert purchase_not_due(5, 7) == (
        "meter already shows purchase count 7; purchase 5 not written"
    )


def test_control_seals_a_purchase_that_the_collector_opens() -> None:
    sealed = PlainCommandSealer().seal(
        CommandToSeal("c1", "M1", "credit", NOW, NOW + timedelta(minutes=2), Decimal("50.00"), 5)
    )
    opened = PlainCommandOpener().open(sealed, meter_id="M1", now=NOW)
    assert opened == OpenedCommand("c1", "credit", Purchase(Decimal("50.00"), 5))
    check_purchase_matches(opened, amount=Decimal("50.00"), purchase_count=5)
    relay = PlainCommandSealer().seal(
        CommandToSeal("c2", "M1", "trip", NOW, NOW + timedelta(minutes=2))
    )
    assert "amount" not in json.loads(relay)
    assert PlainCommandOpener().open(relay, meter_id="M1", now=NOW).purchase is None


@pytest.mark.parametrize(
    ("amount", "count"),
    [(Decimal("500.00"), 5), (Decimal("50.00"), 6), (None, None)],
)
def test_a_request_that_disagrees_with_its_sealed_purchase_is_refused(
    amount: Decimal | None, count: int | None
) -> None:
    sealed = plain_envelope(
        meter_id="M1",
        action="credit",
        command_id="c1",
        expires_at=NOW + timedelta(minutes=1),
        amount=Decimal("50.00"),
        purchase_count=5,
    )
    opened = PlainCommandOpener().open(sealed, meter_id="M1", now=NOW)
    with pytest.raises(RefusedCommand, match=r"envelope says purchase 5 of 50\.00"):
        check_purchase_matches(opened, amount=amount, purchase_count=count)


@pytest.mark.parametrize(
    "fields",
    [
        {"action": "credit"},  # no purchase
        {"action": "credit", "amount": "50.00"},  # no count
        {"action": "trip", "amount": "50.00", "purchase_count": 5},  # a relay command with one
        {"action": "credit", "amount": "-1", "purchase_count": 5},
        {"action": "credit", "amount": "1", "purchase_count": 0},
    ],
)
def test_a_malformed_purchase_envelope_is_refused(fields: dict[str, object]) -> None:
    envelope = {
        "meter_id": "M1",
        "command_id": "c1",
        "expires_at": (NOW + timedelta(minutes=1)).isoformat(),
        **fields,
    }
    with pytest.raises(RefusedCommand, match="malformed envelope"):
        PlainCommandOpener().open(json.dumps(envelope), meter_id="M1", now=NOW)
