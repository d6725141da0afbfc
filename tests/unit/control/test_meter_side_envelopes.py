"""Envelopes as a secure meter opens them: with its own diversified keys only, from the
register words the collector wrote, refusing what must not run."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prepaid_common.sealing import (
    MAX_REGISTER_BYTES,
    Command,
    EnvelopeRefused,
    KeyRing,
    MeterKeys,
    envelope_from_words,
    envelope_words,
    meter_key,
    open_at_meter,
    seal,
)

RING = KeyRing({1: bytes(range(16)), 2: bytes(range(16, 32))})
STRANGER = KeyRing({2: bytes(range(100, 116))})
ISSUED = datetime(2026, 5, 1, 12, tzinfo=UTC)
NOW = ISSUED + timedelta(seconds=10)
KEYS = MeterKeys.derive(RING, "M-1")


def sealed(
    counter: int = 5, *, meter_id: str = "M-1", ring: KeyRing = RING, ttl: int = 60
) -> bytes:
    command = Command(
        meter_id, "trip", counter, ISSUED, ISSUED + timedelta(seconds=ttl), {"command_id": "c"}
    )
    return seal(command, ring)


def opened(raw: bytes, last_counter: int = 0) -> Command:
    return open_at_meter(raw, KEYS, meter_id="M-1", now=NOW, last_counter=last_counter)


def test_a_meter_holds_its_own_keys_per_version_never_the_master() -> None:
    assert KEYS.keys == {v: meter_key(RING.master(v), "M-1", "3des") for v in (1, 2)}
    assert all(key not in RING.keys.values() for key in KEYS.keys.values())
    assert "keys=" not in repr(KEYS)
    assert KEYS.keys[1].hex() not in repr(KEYS)
    command = opened(sealed())
    assert (command.kind, command.counter, command.key_version) == ("trip", 5, 2)


@pytest.mark.parametrize(
    ("raw", "last", "kind"),
    [
        (sealed(ring=STRANGER), 0, "forged"),
        (sealed(meter_id="M-2"), 0, "wrong_meter"),
        (sealed(counter=5), 5, "replayed"),
        (sealed(ttl=-1), 0, "expired"),
        (sealed()[:-1], 0, "malformed"),
    ],
)
def test_the_meter_refuses(raw: bytes, last: int, kind: str) -> None:
    with pytest.raises(EnvelopeRefused) as refused:
        opened(raw, last)
    assert refused.value.kind == kind


def test_every_altered_bit_is_refused() -> None:
    raw = sealed()
    for index in range(len(raw)):
        altered = bytearray(raw)
        altered[index] ^= 0x01
        with pytest.raises(EnvelopeRefused):
            opened(bytes(altered))


def test_an_older_key_version_the_meter_lacks_is_refused() -> None:
    meter = MeterKeys.derive(KeyRing({2: RING.master(2)}), "M-1")
    raw = seal(Command("M-1", "close", 9, ISSUED, NOW + timedelta(minutes=1), {}), RING)
    assert open_at_meter(raw, meter, meter_id="M-1", now=NOW, last_counter=0).counter == 9
    old = seal(
        Command("M-1", "close", 10, ISSUED, NOW + timedelta(minutes=1), {}),
        KeyRing({1: RING.master(1)}),
    )
    with pytest.raises(EnvelopeRefused) as refused:
        open_at_meter(old, meter, meter_id="M-1", now=NOW, last_counter=0)
    assert refused.value.kind == "unknown_key"


@given(st.binary(min_size=1, max_size=MAX_REGISTER_BYTES))
def test_register_words_carry_any_envelope_unchanged(raw: bytes) -> None:
    words = envelope_words(raw)
    assert len(words) == 1 + (len(raw) + 1) // 2
    assert all(0 <= word <= 0xFFFF for word in words)
    assert envelope_from_words(words) == raw


def test_a_block_whose_count_does_not_match_is_malformed() -> None:
    words = envelope_words(base64.b64decode(base64.b64encode(sealed())))
    for bad in ([0, *words[1:]], [2 * len(words), *words[1:]], []):
        with pytest.raises(EnvelopeRefused) as refused:
            envelope_from_words(bad)
        assert refused.value.kind == "malformed"
    with pytest.raises(ValueError, match="fits the register block"):
        envelope_words(bytes(MAX_REGISTER_BYTES + 1))
