"""A meter's identity: the serial number its identity register tells, as text."""

from __future__ import annotations

from collections.abc import Sequence

from collector.domain.decoding import ImplausibleValue
from collector.domain.profiles import IdentitySpec, WordOrder


def decode_identity(spec: IdentitySpec, words: Sequence[int], word_order: WordOrder) -> str:
    """Return the serial number the registers hold (decimal digits)."""
    if len(words) != spec.words:
        raise ImplausibleValue(f"identity needs {spec.words} registers, got {len(words)}")
    if spec.words == 1:
        return str(words[0])
    high, low = (words[0], words[1]) if word_order == "big" else (words[1], words[0])
    return str(high << 16 | low)


def identity_mismatch(expected: str | None, found: str | None) -> bool:
    """True when a device answers with another identity than the one registered."""
    return expected is not None and found is not None and found != expected
