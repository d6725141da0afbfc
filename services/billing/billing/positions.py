"""Rating positions kept in memory between batches, with the database as the truth.

Each entry is a meter's position as stored (its JSON text) together with that position
parsed. A batch loads every meter's stored text anyway (under the row lock that orders
replicas), and an entry is used only when its text is *exactly* the stored one; otherwise
the stored text is parsed as before. So nothing needs invalidating: a batch that rolled
back left the old text in the database, which no longer matches the entry its rating put
here, and a position changed by anything else (a swap, another replica) does not match
either. An entry is only ever a text and the position that text reads back as
(``position_text`` round-trips, proved in ``tests/unit/billing/test_billing_rater.py``).
"""

from __future__ import annotations

from billing.domain.rater import position_from_text
from billing.domain.rating import Position


class PositionCache:
    """Parsed positions by meter, at most ``size`` of them (least recently written go)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._kept: dict[str, tuple[str, Position]] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._kept)

    def load(self, meter_id: str, stored: str | None) -> Position:
        """The position whose stored text is ``stored`` (None: never rated)."""
        kept = self._kept.get(meter_id)
        if kept is not None and stored is not None and kept[0] == stored:
            self.hits += 1
            return kept[1]
        self.misses += 1
        return position_from_text(stored)

    def keep(self, meter_id: str, text: str, position: Position) -> None:
        """Remember the text about to be written for a meter and the position it holds."""
        if self._size <= 0:
            return
        self._kept.pop(meter_id, None)
        self._kept[meter_id] = (text, position)
        if len(self._kept) > self._size:
            # Dicts keep insertion order: the first entries are the least recently written.
            for stale in list(self._kept)[: max(1, self._size // 10)]:
                del self._kept[stale]

    def clear(self) -> None:
        self._kept.clear()
