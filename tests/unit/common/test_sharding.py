"""The readings' shard rule: stable across processes and releases, and every shard taken by
exactly one billing replica whatever their number."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prepaid_common.bus.base import topic_matches
from prepaid_common.contracts.identifiers import IDENTIFIER_PATTERN
from prepaid_common.contracts.sharding import (
    owned_shards,
    shard_bindings,
    shard_of,
    sharded_routing_key,
)

METERS = ["M-00001", "shop:12", "B1-01", "meter_7"]


def test_a_meter_keeps_its_shard_across_releases() -> None:
    # Pinned: a change here moves meters between shards of a running site (their order
    # across the change would no longer be kept by one queue).
    assert [shard_of(m, 16) for m in METERS] == [1, 11, 10, 6]
    assert [shard_of(m, 7) for m in METERS] == [5, 0, 1, 6]
    assert [shard_of(m, 1) for m in METERS] == [0, 0, 0, 0]


def test_a_meter_keeps_its_shard_across_processes() -> None:
    # Another interpreter, another string-hash salt: the same shards.
    code = (
        "from prepaid_common.contracts.sharding import shard_of; "
        f"print([shard_of(m, 16) for m in {METERS!r}])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert out.strip() == str([shard_of(m, 16) for m in METERS])


@given(st.from_regex(IDENTIFIER_PATTERN, fullmatch=True), st.integers(1, 1024))
def test_every_meter_has_one_shard_in_range(meter_id: str, shards: int) -> None:
    assert 0 <= shard_of(meter_id, shards) < shards


@given(st.integers(1, 256), st.integers(1, 64))
def test_every_shard_has_exactly_one_owner(shards: int, replicas: int) -> None:
    owners: dict[int, list[int]] = {}
    for replica in range(replicas):
        for shard in owned_shards(shards, replicas, replica):
            owners.setdefault(shard, []).append(replica)
    assert owners == {shard: [shard % replicas] for shard in range(shards)}


def test_ownership_refuses_a_replica_out_of_range() -> None:
    with pytest.raises(ValueError, match=r"not in 0\.\.1"):
        owned_shards(4, 2, 2)
    with pytest.raises(ValueError, match="at least 1"):
        shard_of("M1", 0)


@given(
    st.from_regex(r"^[A-Za-z0-9_.-]{1,64}$", fullmatch=True),
    st.integers(0, 63),
    st.integers(0, 63),
)
def test_a_shard_binding_takes_its_own_shard_only(source: str, shard: int, other: int) -> None:
    key = sharded_routing_key("reading.batch.v1", shard, source)
    [batches, singles] = shard_bindings(("reading.batch.v1", "reading.v1"), other)
    assert topic_matches(batches, key) == (shard == other)
    assert not topic_matches(singles, key)
    # A consumer of every reading (control) still takes every shard.
    assert topic_matches("reading.batch.v1.#", key)
    # An unsharded key (a collector instance of any name) never falls into a shard.
    assert not topic_matches(batches, f"reading.batch.v1.{source}")
