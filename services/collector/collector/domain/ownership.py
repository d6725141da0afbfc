"""Which collector replica polls a DTU we dial: rendezvous hashing over the live replicas.

Every replica computes the same answer from the same membership, and when a replica joins
or leaves only the DTUs it gains or held move (about 1/n of them), not the whole field.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection


def _weight(replica: str, dtu_id: str) -> bytes:
    return hashlib.blake2b(f"{replica}\x00{dtu_id}".encode(), digest_size=8).digest()


def owner_of(dtu_id: str, replicas: Collection[str]) -> str | None:
    """Return the replica that owns ``dtu_id`` (None when no replica is live)."""
    if not replicas:
        return None
    return max(replicas, key=lambda replica: (_weight(replica, dtu_id), replica))


def owned_by(me: str, dtu_ids: Collection[str], replicas: Collection[str]) -> set[str]:
    """Return the DTUs among ``dtu_ids`` that replica ``me`` owns."""
    return {dtu_id for dtu_id in dtu_ids if owner_of(dtu_id, replicas) == me}
