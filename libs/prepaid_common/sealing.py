"""Sealed meter commands: the envelope both ends agree on, and its cryptography.

The banking practice (EMV key diversification, per-counter session keys, CMAC) applied to
meters. From a versioned master key ``MK`` and the meter's identifier, each meter gets its own
key; from that key and the command's counter, two session keys (one encrypts, one MACs), so
no two commands share a key and a leaked meter key exposes one meter, not the fleet.

Wire format (then base64, since commands travel as text; meters get the raw bytes)::

    version   1 byte   (1)
    algorithm 1 byte   (1 = 3DES double-length, 2 = AES-128)
    key       2 bytes  master key version
    counter   4 bytes  per meter, strictly increasing
    issued    4 bytes  Unix seconds
    expires   4 bytes  Unix seconds
    id length 1 byte, meter id (ASCII)
    length    2 bytes, ciphertext (CBC, zero IV: the key is never used twice)
    MAC       CMAC over everything before it (8 bytes for 3DES, 16 for AES)

The plaintext is the command (one byte) and its payload (compact JSON: the command id and
what the command needs, e.g. a purchase's amount and count). Encrypt-then-MAC: nothing is
decrypted before the MAC over the header and the ciphertext is verified.

Pure but for reading the key file. A key is never part of a message, a log line or a repr.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from Crypto.Cipher import AES, DES3
from Crypto.Hash import CMAC
from Crypto.Util.Padding import pad, unpad

ENVELOPE_VERSION = 1
Algorithm = Literal["3des", "aes128"]
ALGORITHMS: tuple[Algorithm, ...] = ("3des", "aes128")
_ALGORITHM_CODES: dict[Algorithm, int] = {"3des": 1, "aes128": 2}
_ALGORITHMS_BY_CODE = {code: name for name, code in _ALGORITHM_CODES.items()}
_MAC_LENGTH: dict[Algorithm, int] = {"3des": 8, "aes128": 16}
_HEADER = struct.Struct(">BBHIII")
_MAX_COUNTER = 0xFFFFFFFF

# What a sealed command asks of the meter, and its one-byte code in the plaintext.
CommandKind = Literal[
    "trip",
    "close",
    "hold_on",
    "hold_off",
    "time_set",
    "credit",
    "alarm_thresholds",
    "power_limit",
]
COMMAND_CODES: dict[CommandKind, int] = {
    "trip": 0x1A,
    "close": 0x1C,
    "hold_on": 0x3A,
    "hold_off": 0x3B,
    "time_set": 0x08,
    "credit": 0x40,
    "alarm_thresholds": 0x41,
    "power_limit": 0x42,
}
_KINDS_BY_CODE = {code: kind for kind, code in COMMAND_CODES.items()}

# Session key purposes: the same counter gives an encryption key and a different MAC key.
_ENCRYPT, _AUTHENTICATE = 0x01, 0x02


class EnvelopeRefused(Exception):
    """An envelope that must not be executed; ``kind`` says why, for metrics and events."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


@dataclass(frozen=True)
class Command:
    """What a verified envelope authorises."""

    meter_id: str
    kind: CommandKind
    counter: int
    issued_at: datetime
    expires_at: datetime
    payload: Mapping[str, Any]
    algorithm: Algorithm = "3des"
    key_version: int = 1


@dataclass(frozen=True)
class KeyRing:
    """Master keys by version; the newest seals, any known one opens (rotation)."""

    keys: Mapping[int, bytes] = field(repr=False)

    def __post_init__(self) -> None:
        if not self.keys:
            raise ValueError("a key ring needs at least one master key")
        for version, key in self.keys.items():
            if not 1 <= version <= 0xFFFF or len(key) != 16:
                raise ValueError(f"master key {version}: a version 1-65535 and 16 bytes needed")
            # A key whose halves are equal would make 3DES single DES: refused at load.
            DES3.adjust_key_parity(key)

    @property
    def current(self) -> int:
        """The version new envelopes are sealed with."""
        return max(self.keys)

    def master(self, version: int) -> bytes:
        """Return a master key by version; EnvelopeRefused if it is unknown."""
        try:
            return self.keys[version]
        except KeyError:
            raise EnvelopeRefused("unknown_key", f"master key version {version}") from None

    def __repr__(self) -> str:
        return f"KeyRing(versions={sorted(self.keys)})"


def parse_key_file(text: str) -> KeyRing:
    """Read master keys from a secret's text: ``<version> <32 hex digits>`` a line (or
    separated by ``;`` where the secret is one environment variable).

    Blank lines and ``#`` comments are skipped. The error never quotes a key.
    """
    keys: dict[int, bytes] = {}
    for number, line in enumerate(text.replace(";", "\n").splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        try:
            version, key = int(parts[0]), bytes.fromhex(parts[1])
            if len(parts) != 2:
                raise ValueError
        except (ValueError, IndexError):
            raise ValueError(f"key file line {number}: expected '<version> <hex key>'") from None
        if version in keys:
            raise ValueError(f"key file line {number}: version {version} given twice")
        keys[version] = key
    return KeyRing(keys)


class MissingMasterKey(RuntimeError):
    """Production without the command master keys: the service refuses to start."""


def load_key_ring(
    path: Path | None, *, environment: str, text: str | None = None
) -> KeyRing | None:
    """Read the master keys from a file (or their text, from a secret environment variable);
    None (the plain envelope) only outside production.

    The keys are never logged; a bad line is named by its number, not its content.
    """
    if path is not None:
        return parse_key_file(path.read_text())
    if text:
        return parse_key_file(text)
    if environment == "production":
        raise MissingMasterKey(
            "PREPAID_COMMAND_MASTER_KEY_FILE (or PREPAID_COMMAND_MASTER_KEYS) is required in "
            "production: commands are never sealed or opened in the plain envelope there"
        )
    return None


# --- keys --------------------------------------------------------------------------------


def _meter_block(meter_id: str, size: int) -> bytes:
    # Meter ids are up to 64 characters: a digest gives the fixed-size "Y" EMV pads to.
    return hashlib.sha256(meter_id.encode()).digest()[:size]


def meter_key(master: bytes, meter_id: str, algorithm: Algorithm) -> bytes:
    """Diversify a master key into one meter's key (EMV option A for 3DES)."""
    if algorithm == "3des":
        y = _meter_block(meter_id, 8)
        cipher = DES3.new(DES3.adjust_key_parity(master), DES3.MODE_ECB)
        left = cipher.encrypt(y)
        right = cipher.encrypt(bytes(b ^ 0xFF for b in y))
        return DES3.adjust_key_parity(left + right)
    return AES.new(master, AES.MODE_ECB).encrypt(_meter_block(meter_id, 16))


def session_key(key: bytes, counter: int, purpose: int, algorithm: Algorithm) -> bytes:
    """Derive the session key of one counter and purpose from a meter's key."""
    if algorithm == "3des":
        cipher = DES3.new(key, DES3.MODE_ECB)
        left = cipher.encrypt(struct.pack(">IBBH", counter, purpose, 0xF0, 0))
        right = cipher.encrypt(struct.pack(">IBBH", counter, purpose, 0x0F, 0))
        return DES3.adjust_key_parity(left + right)
    block = struct.pack(">IB", counter, purpose) + bytes(11)
    return AES.new(key, AES.MODE_ECB).encrypt(block)


def _cipher(key: bytes, algorithm: Algorithm) -> Any:
    if algorithm == "3des":
        return DES3.new(key, DES3.MODE_CBC, iv=bytes(8))
    return AES.new(key, AES.MODE_CBC, iv=bytes(16))


def _mac(key: bytes, data: bytes, algorithm: Algorithm) -> bytes:
    ciphermod: Any = DES3 if algorithm == "3des" else AES
    tag: bytes = CMAC.new(key, msg=data, ciphermod=ciphermod).digest()
    return tag[: _MAC_LENGTH[algorithm]]


def _block_size(algorithm: Algorithm) -> int:
    return 8 if algorithm == "3des" else 16


# --- sealing and opening -----------------------------------------------------------------


def _seconds(moment: datetime) -> int:
    return int(moment.timestamp())


def seal(command: Command, ring: KeyRing) -> bytes:
    """Encrypt and authenticate a command with the ring's current master key."""
    if not 1 <= command.counter <= _MAX_COUNTER:
        raise ValueError(f"counter {command.counter} outside 1-{_MAX_COUNTER}")
    meter_id = command.meter_id.encode("ascii")
    if not 1 <= len(meter_id) <= 64:
        raise ValueError("a meter id of 1-64 ASCII characters")
    algorithm, version = command.algorithm, ring.current
    key = meter_key(ring.master(version), command.meter_id, algorithm)
    plaintext = (
        bytes([COMMAND_CODES[command.kind]])
        + json.dumps(dict(command.payload), separators=(",", ":"), sort_keys=True).encode()
    )
    ciphertext: bytes = _cipher(
        session_key(key, command.counter, _ENCRYPT, algorithm), algorithm
    ).encrypt(pad(plaintext, _block_size(algorithm), style="iso7816"))
    head = (
        _HEADER.pack(
            ENVELOPE_VERSION,
            _ALGORITHM_CODES[algorithm],
            version,
            command.counter,
            _seconds(command.issued_at),
            _seconds(command.expires_at),
        )
        + bytes([len(meter_id)])
        + meter_id
        + struct.pack(">H", len(ciphertext))
        + ciphertext
    )
    mac_key = session_key(key, command.counter, _AUTHENTICATE, algorithm)
    return head + _mac(mac_key, head, algorithm)


def seal_text(command: Command, ring: KeyRing) -> str:
    """Seal a command into the text a bus message carries."""
    return base64.b64encode(seal(command, ring)).decode()


def open_text(
    text: str, ring: KeyRing, *, meter_id: str, now: datetime, last_counter: int
) -> Command:
    """Open a sealed text envelope; EnvelopeRefused when it must not run."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise EnvelopeRefused("malformed", "not base64") from None
    return open_envelope(raw, ring, meter_id=meter_id, now=now, last_counter=last_counter)


def open_envelope(
    raw: bytes, ring: KeyRing, *, meter_id: str, now: datetime, last_counter: int
) -> Command:
    """Verify and decrypt an envelope for one meter.

    Refused (``EnvelopeRefused.kind``): ``malformed``, ``unknown_key``, ``forged`` (the MAC
    does not verify: forged or altered), ``wrong_meter``, ``replayed`` (counter not above
    ``last_counter``), ``expired``.
    """

    def key_of(version: int, sealed_for: str, algorithm: Algorithm) -> bytes:
        return meter_key(ring.master(version), sealed_for, algorithm)

    return _open(raw, key_of, meter_id=meter_id, now=now, last_counter=last_counter, id_first=False)


@dataclass(frozen=True)
class MeterKeys:
    """What a meter that verifies envelopes itself holds: its own diversified keys (one per
    master key version, for rotation) and its algorithm; never a master key."""

    algorithm: Algorithm
    keys: Mapping[int, bytes] = field(repr=False)

    @classmethod
    def derive(cls, ring: KeyRing, meter_id: str, algorithm: Algorithm = "3des") -> MeterKeys:
        """Return the keys a meter is personalised with at the factory (or key loading)."""
        keys = {
            version: meter_key(master, meter_id, algorithm) for version, master in ring.keys.items()
        }
        return cls(algorithm, keys)

    def __repr__(self) -> str:
        return f"MeterKeys({self.algorithm}, versions={sorted(self.keys)})"


def open_at_meter(
    raw: bytes, keys: MeterKeys, *, meter_id: str, now: datetime, last_counter: int
) -> Command:
    """Verify and decrypt an envelope as the meter itself does, with its own keys only.

    The same refusals as ``open_envelope``; an envelope for another meter is refused as
    ``wrong_meter`` before any MAC (the meter has no key but its own to check it with), and
    one of another algorithm than the meter's fails its MAC (``forged``).
    """

    def key_of(version: int, sealed_for: str, algorithm: Algorithm) -> bytes:
        try:
            return keys.keys[version]
        except KeyError:
            raise EnvelopeRefused("unknown_key", f"key version {version}") from None

    return _open(raw, key_of, meter_id=meter_id, now=now, last_counter=last_counter, id_first=True)


def _open(
    raw: bytes,
    key_of: Callable[[int, str, Algorithm], bytes],
    *,
    meter_id: str,
    now: datetime,
    last_counter: int,
    id_first: bool,
) -> Command:
    header_end = _HEADER.size + 1
    if len(raw) < header_end:
        raise EnvelopeRefused("malformed", "too short")
    version, code, key_version, counter, issued, expires = _HEADER.unpack_from(raw)
    if version != ENVELOPE_VERSION:
        raise EnvelopeRefused("malformed", f"envelope version {version}")
    algorithm = _ALGORITHMS_BY_CODE.get(code)
    if algorithm is None:
        raise EnvelopeRefused("malformed", f"algorithm {code}")
    id_length = raw[_HEADER.size]
    id_end = header_end + id_length
    if len(raw) < id_end + 2:
        raise EnvelopeRefused("malformed", "truncated")
    (length,) = struct.unpack_from(">H", raw, id_end)
    body_end = id_end + 2 + length
    if len(raw) != body_end + _MAC_LENGTH[algorithm]:
        raise EnvelopeRefused("malformed", "length does not match")
    try:
        sealed_for = raw[header_end:id_end].decode("ascii")
    except UnicodeDecodeError:
        raise EnvelopeRefused("malformed", "meter id is not ASCII") from None
    if id_first and sealed_for != meter_id:
        raise EnvelopeRefused("wrong_meter", f"envelope is for meter {sealed_for}, not {meter_id}")
    key = key_of(key_version, sealed_for, algorithm)
    expected = _mac(session_key(key, counter, _AUTHENTICATE, algorithm), raw[:body_end], algorithm)
    if not hmac.compare_digest(expected, raw[body_end:]):
        raise EnvelopeRefused("forged", "MAC does not verify (forged or altered)")
    if sealed_for != meter_id:
        raise EnvelopeRefused("wrong_meter", f"envelope is for meter {sealed_for}, not {meter_id}")
    if counter <= last_counter:
        raise EnvelopeRefused("replayed", f"counter {counter} not above {last_counter}")
    if _seconds(now) >= expires:
        raise EnvelopeRefused("expired", "expired")
    cipher = _cipher(session_key(key, counter, _ENCRYPT, algorithm), algorithm)
    try:
        plaintext = unpad(
            cipher.decrypt(raw[id_end + 2 : body_end]), _block_size(algorithm), style="iso7816"
        )
        kind = _KINDS_BY_CODE[plaintext[0]]
        payload = json.loads(plaintext[1:])
        if not isinstance(payload, dict):
            raise ValueError("payload is not an object")
    except (ValueError, KeyError, IndexError):
        # Authentic but unreadable: a sealer bug, not an attack.
        raise EnvelopeRefused("malformed", "plaintext unreadable") from None
    return Command(
        meter_id=sealed_for,
        kind=kind,
        counter=counter,
        issued_at=datetime.fromtimestamp(issued, UTC),
        expires_at=datetime.fromtimestamp(expires, UTC),
        payload=payload,
        algorithm=algorithm,
        key_version=key_version,
    )


# --- envelopes in meter registers ----------------------------------------------------------
# A meter that verifies envelopes itself takes the raw envelope in a block of 16-bit
# registers (one Modbus FC16 write): the byte count, then the bytes two per word, high byte
# first, the last word padded with zero. It answers in a result register what it did.

MAX_REGISTER_BYTES = 244  # 122 words after the count: one FC16 write carries 123 words


def envelope_words(raw: bytes) -> list[int]:
    """Return the register words that carry an envelope to a meter."""
    if not 1 <= len(raw) <= MAX_REGISTER_BYTES:
        raise ValueError(f"an envelope of 1-{MAX_REGISTER_BYTES} bytes fits the register block")
    padded = raw + bytes(len(raw) % 2)
    return [len(raw), *struct.unpack(f">{len(padded) // 2}H", padded)]


def envelope_from_words(words: Sequence[int]) -> bytes:
    """Return the envelope a register block carries; EnvelopeRefused if the count is wrong."""
    if not words or not 1 <= words[0] <= 2 * (len(words) - 1):
        raise EnvelopeRefused("malformed", "byte count does not match the words written")
    data = struct.pack(f">{len(words) - 1}H", *words[1:])
    return data[: words[0]]


# What a secure meter's result register says about the last envelope written to it.
MeterResult = Literal[
    "none",
    "accepted",
    "forged",
    "replayed",
    "expired",
    "wrong_meter",
    "malformed",
    "unknown_key",
    "not_executed",
    "purchase_refused",
]
METER_RESULT_CODES: dict[MeterResult, int] = {
    "none": 0,
    "accepted": 1,
    "forged": 2,
    "replayed": 3,
    "expired": 4,
    "wrong_meter": 5,
    "malformed": 6,
    "unknown_key": 7,
    # Genuine, but the meter could not carry it out (a trip while hold-power is on...).
    "not_executed": 8,
    # Genuine, but not the meter's next purchase count: final, as on a plain meter.
    "purchase_refused": 9,
}
METER_RESULTS_BY_CODE: dict[int, MeterResult] = {
    code: result for result, code in METER_RESULT_CODES.items()
}
