"""Ids for the many rows a batch of readings posts."""

from __future__ import annotations

import os


def new_ids(count: int) -> list[str]:
    """``count`` random version-4 UUID strings, as ``str(uuid.uuid4())`` writes them, from
    one read of the system's random source (uuid4 reads it once per id)."""
    raw = os.urandom(16 * count).hex()
    ids = []
    for at in range(0, 32 * count, 32):
        h = raw[at : at + 32]
        variant = "89ab"[int(h[16], 16) & 3]
        ids.append(f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:]}")
    return ids
