"""The sealed command envelope: known vectors, round trips, and every refusal."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from Crypto.Cipher import AES, DES3
from Crypto.Hash import CMAC
from hypothesis import given
from hypothesis import strategies as st
from prepaid_common.sealing import (
    ALGORITHMS,
    COMMAND_CODES,
    Algorithm,
    Command,
    EnvelopeRefused,
    KeyRing,
    meter_key,
    open_envelope,
    open_text,
    parse_key_file,
    seal,
    seal_text,
)

MASTER = bytes(range(16))
RING = KeyRing({1: MASTER})
ISSUED = datetime(2026, 1, 1, tzinfo=UTC)
EXPIRES = ISSUED + timedelta(minutes=2)
NOW = ISSUED + timedelta(minutes=1)


def command(counter: int = 7, algorithm: Algorithm = "3des", meter_id: str = "M-0001") -> Command:
    return Command(meter_id, "trip", counter, ISSUED, EXPIRES, {"command_id": "c1"}, algorithm)


def test_cmac_matches_the_rfc_4493_vectors() -> None:
    key = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")
    assert CMAC.new(key, ciphermod=AES).hexdigest() == "bb1d6929e95937287fa37d129b756746"
    message = bytes.fromhex("6bc1bee22e409f96e93d7e117393172a")
    assert (
        CMAC.new(key, msg=message, ciphermod=AES).hexdigest() == "070a16b46b4d4144f79bdd9dd04a287c"
    )


def test_3des_meter_key_is_emv_option_a() -> None:
    key = meter_key(MASTER, "M-0001", "3des")
    assert key.hex() == "e083fd4cf25b402aa4290dceb95e9d9b"
    # Both halves are the master key's encryption of Y and of Y xor FF.., with odd parity.
    assert all(bin(byte).count("1") % 2 == 1 for byte in key)
    cipher = DES3.new(DES3.adjust_key_parity(MASTER), DES3.MODE_ECB)
    y = hashlib.sha256(b"M-0001").digest()[:8]  # the id, fixed to one DES block
    halves = cipher.encrypt(y) + cipher.encrypt(bytes(b ^ 0xFF for b in y))
    assert DES3.adjust_key_parity(halves) == key
    assert meter_key(MASTER, "M-0002", "3des") != key
    assert meter_key(MASTER, "M-0001", "aes128").hex() == "9f21bf388645cfe548c7eebcb370fd7a"


def test_the_envelope_format_is_pinned() -> None:
    # The format is a contract with meters and other collectors: it changes only on purpose.
    assert seal_text(command(), RING) == (
        "AQEAAQAAAAdpVbkAaVW5eAZNLTAwMDEAGN2DRLjnIKJwNHhaxH06fDxxDzwZbvk9L+k13vnKW8DR"
    )
    raw = seal(command(algorithm="aes128"), RING)
    assert raw[:2] == bytes([1, 2])
    assert len(raw) == 73


@given(
    counter=st.integers(1, 0xFFFFFFFF),
    algorithm=st.sampled_from(ALGORITHMS),
    meter_id=st.from_regex(r"[A-Za-z0-9_:-]{1,64}", fullmatch=True),
    kind=st.sampled_from(sorted(COMMAND_CODES)),
    payload=st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=20)),
)
def test_round_trip(
    counter: int, algorithm: Algorithm, meter_id: str, kind: str, payload: dict[str, object]
) -> None:
    sealed = Command(meter_id, kind, counter, ISSUED, EXPIRES, payload, algorithm)  # type: ignore[arg-type]
    opened = open_text(
        seal_text(sealed, RING), RING, meter_id=meter_id, now=NOW, last_counter=counter - 1
    )
    assert opened == sealed


@given(position=st.integers(0, 56), bit=st.integers(0, 7))
def test_any_altered_bit_is_refused(position: int, bit: int) -> None:
    raw = bytearray(seal(command(), RING))
    raw[position] ^= 1 << bit
    with pytest.raises(EnvelopeRefused) as refused:
        open_envelope(bytes(raw), RING, meter_id="M-0001", now=NOW, last_counter=0)
    assert refused.value.kind in {"forged", "malformed", "unknown_key"}


def refusal(text: str, *, meter_id: str = "M-0001", now: datetime = NOW, last: int = 0) -> str:
    with pytest.raises(EnvelopeRefused) as refused:
        open_text(text, RING, meter_id=meter_id, now=now, last_counter=last)
    return refused.value.kind


def test_forged_replayed_expired_and_misdirected_envelopes_are_refused() -> None:
    other_ring = KeyRing({1: bytes(16 - i for i in range(16))})
    assert refusal(seal_text(command(), other_ring)) == "forged"
    assert refusal(seal_text(command(counter=7), RING), last=7) == "replayed"
    assert refusal(seal_text(command(counter=7), RING), last=9) == "replayed"
    assert refusal(seal_text(command(), RING), now=EXPIRES) == "expired"
    assert refusal(seal_text(command(), RING), meter_id="M-0002") == "wrong_meter"
    assert refusal("not base64!") == "malformed"
    assert refusal(base64.b64encode(b"\x01\x01").decode()) == "malformed"
    # Moving the counter forward (to beat the replay check) breaks the MAC.
    raw = bytearray(seal(command(counter=7), RING))
    raw[7] = 8
    assert refusal(base64.b64encode(bytes(raw)).decode(), last=7) == "forged"


def test_rotation_opens_old_keys_and_seals_with_the_newest() -> None:
    old = seal_text(command(), RING)
    rotated = KeyRing({1: MASTER, 2: bytes(range(16, 32))})
    assert seal(command(), rotated)[2:4] == bytes([0, 2])
    assert open_text(old, rotated, meter_id="M-0001", now=NOW, last_counter=0).key_version == 1
    assert refusal(seal_text(command(), rotated)) == "unknown_key"


def test_key_files_are_read_and_never_shown() -> None:
    ring = parse_key_file(f"# site keys\n1 {MASTER.hex()}\n\n2 {bytes(range(1, 17)).hex()}\n")
    assert ring.current == 2
    assert repr(ring) == "KeyRing(versions=[1, 2])"
    for bad in ("", "1 00", f"1 {MASTER.hex()}\n1 {MASTER.hex()}", "x y", f"1 {'00' * 16}"):
        with pytest.raises(ValueError, match="key") as error:
            parse_key_file(bad)
        assert MASTER.hex() not in str(error.value)
