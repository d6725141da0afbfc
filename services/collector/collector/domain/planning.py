"""Read planning: the fewest contiguous register reads that cover what a profile needs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from collector.domain.profiles import MAX_READ_REGISTERS, MeterProfile


@dataclass(frozen=True)
class ReadBlock:
    """One read request: ``count`` registers from ``address``."""

    address: int
    count: int

    @property
    def end(self) -> int:
        return self.address + self.count


def plan_reads(
    spans: Iterable[tuple[int, int]], *, max_gap: int = 0, max_count: int = MAX_READ_REGISTERS
) -> list[ReadBlock]:
    """Cover (address, words) spans with the fewest reads, never splitting a span.

    Greedy from the lowest address is optimal here: each read is stretched as far as the
    count limit and the allowed gap let it before the next one starts.
    """
    blocks: list[ReadBlock] = []
    for address, words in sorted(set(spans)):
        if not 1 <= words <= max_count:
            raise ValueError(f"a span of {words} registers cannot be read in one request")
        if blocks:
            last = blocks[-1]
            end = max(last.end, address + words)
            if address - last.end <= max_gap and end - last.address <= max_count:
                blocks[-1] = ReadBlock(last.address, end - last.address)
                continue
        blocks.append(ReadBlock(address, words))
    return blocks


def plan_profile_reads(profile: MeterProfile) -> list[ReadBlock]:
    """Return the reads one poll of a meter of this profile makes."""
    return plan_reads(profile.spans(), max_gap=profile.max_gap)


def registers_from_blocks(
    blocks: Sequence[ReadBlock], results: Sequence[Sequence[int]]
) -> Mapping[int, int]:
    """Join each block's words into one address-to-word map."""
    if len(blocks) == 1:
        block, words = blocks[0], results[0]
        if len(results) == 1 and len(words) == block.count:
            return dict(zip(range(block.address, block.end), words))  # noqa: B905 (counted)
    registers: dict[int, int] = {}
    for block, words in zip(blocks, results, strict=True):
        if len(words) != block.count:
            raise ValueError(f"read of {block.count} at {block.address:#06x} got {len(words)}")
        registers.update(zip(range(block.address, block.end), words, strict=True))
    return registers
