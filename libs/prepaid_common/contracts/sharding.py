"""Readings sharded by meter: which shard a meter's readings travel on, and who takes it.

With ``S`` shards (``PREPAID_READING_SHARDS``, the same on every collector and billing
replica) a meter's readings always travel on shard ``crc32(meter id) mod S``: the
collector splits each batch by shard and routes it ``reading.batch.v1.shard=<k>.<source>``,
and billing takes each shard from a queue of its own, so one meter's readings stay in
order on one replica while the shards spread over many. ``S = 1`` is no sharding at all:
the routing keys and billing's one ``readings`` queue are what they always were.

The shard word (``shard=<k>``) holds a character no meter id or collector instance may
hold, so an unsharded key can never be mistaken for a shard's. Consumers that take every
reading (control) keep binding ``reading.batch.v1.#``, which matches every shard.

Replica ``i`` of ``N`` billing replicas takes the shards ``k`` with ``k mod N == i``.
"""

from __future__ import annotations

import zlib

SHARD_WORD = "shard="


def shard_of(meter_id: str, shards: int) -> int:
    """Return the shard of a meter's readings: stable across processes and releases.

    ``zlib.crc32``, not ``hash()``: Python salts string hashes per process.
    """
    if shards < 1:
        raise ValueError("shards must be at least 1")
    return zlib.crc32(meter_id.encode()) % shards


def sharded_routing_key(message_type: str, shard: int, rest: str) -> str:
    """Return ``<type>.shard=<k>.<rest>``: the key of a message on one shard."""
    return f"{message_type}.{SHARD_WORD}{shard}.{rest}"


def shard_bindings(message_types: tuple[str, ...], shard: int) -> list[str]:
    """Return the topic patterns that take exactly one shard of these message types."""
    return [f"{message_type}.{SHARD_WORD}{shard}.#" for message_type in message_types]


def owned_shards(shards: int, replicas: int, replica: int) -> list[int]:
    """Return the shards replica ``replica`` of ``replicas`` takes: ``k mod replicas``.

    Every shard has exactly one owner for any replica count; a replica beyond the shard
    count owns none.
    """
    if shards < 1 or replicas < 1:
        raise ValueError("shards and replicas must be at least 1")
    if not 0 <= replica < replicas:
        raise ValueError(f"replica {replica} is not in 0..{replicas - 1}")
    return [shard for shard in range(shards) if shard % replicas == replica]
