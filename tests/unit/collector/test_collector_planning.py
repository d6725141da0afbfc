"""Read planning: fewest contiguous reads, spans kept whole, gaps and the 125 limit obeyed."""

from __future__ import annotations

import itertools

import pytest
from collector.domain import ReadBlock, plan_profile_reads, plan_reads, registers_from_blocks
from collector.profiles import load_profiles
from hypothesis import given
from hypothesis import strategies as st


def test_adjacent_spans_merge_into_one_read() -> None:
    assert plan_reads([(0, 2), (2, 2), (4, 1)]) == [ReadBlock(0, 5)]


def test_a_gap_splits_reads_unless_the_profile_allows_it() -> None:
    spans = [(0, 2), (5, 2)]
    assert plan_reads(spans) == [ReadBlock(0, 2), ReadBlock(5, 2)]
    assert plan_reads(spans, max_gap=3) == [ReadBlock(0, 7)]
    assert plan_reads(spans, max_gap=2) == [ReadBlock(0, 2), ReadBlock(5, 2)]


def test_a_read_never_exceeds_125_registers_nor_splits_a_value() -> None:
    spans = [(address, 2) for address in range(0, 300, 2)]
    blocks = plan_reads(spans)
    assert [b.count for b in blocks] == [124, 124, 52]
    assert plan_reads([(0, 1), (1, 2), (124, 2)]) == [ReadBlock(0, 3), ReadBlock(124, 2)]


def test_input_order_and_duplicates_do_not_matter() -> None:
    assert plan_reads([(10, 2), (0, 2), (10, 2), (2, 1)]) == [ReadBlock(0, 3), ReadBlock(10, 2)]


def test_shipped_profiles_plan() -> None:
    profiles = load_profiles()
    # Energy, TOU, V, A, power, the power limit, the relay state, the relay command
    # register (reads as 0), local credit, purchase count and the status word (load
    # alarms): one read.
    assert plan_profile_reads(profiles["reference-prepaid"]) == [ReadBlock(0x0000, 0x16)]
    assert plan_profile_reads(profiles["acrel-ddsy1352"]) == [ReadBlock(0x0000, 0x0E)]
    assert plan_profile_reads(profiles["eastron-sdm120"]) == [
        ReadBlock(0x00, 2),
        ReadBlock(0x06, 2),
        ReadBlock(0x0C, 2),
        ReadBlock(0x48, 2),
    ]


def test_block_results_join_into_one_register_map() -> None:
    blocks = [ReadBlock(0, 2), ReadBlock(10, 1)]
    assert registers_from_blocks(blocks, [[7, 8], [9]]) == {0: 7, 1: 8, 10: 9}
    with pytest.raises(ValueError, match="got 1"):
        registers_from_blocks(blocks, [[7], [9]])


@given(
    # Values at even addresses, one or two registers wide: never overlapping, as in a profile.
    spans=st.dictionaries(
        st.integers(min_value=0, max_value=300).map(lambda n: 2 * n),
        st.integers(min_value=1, max_value=2),
        min_size=1,
        max_size=60,
    ).map(lambda found: sorted(found.items())),
    max_gap=st.integers(min_value=0, max_value=10),
)
def test_every_span_is_covered_whole_within_the_limits(
    spans: list[tuple[int, int]], max_gap: int
) -> None:
    blocks = plan_reads(spans, max_gap=max_gap)
    assert all(1 <= block.count <= 125 for block in blocks)
    assert all(a.end <= b.address for a, b in itertools.pairwise(blocks))
    for address, words in spans:
        assert any(b.address <= address and address + words <= b.end for b in blocks)
