"""Local-prepaid meters: purchase counts, and the meter's read-back held against the ledger.

A local-prepaid meter keeps its own credit. Each top-up of its account becomes a purchase
pushed to the meter with the meter's next purchase count (购电次数); the meter takes only
its count + 1. Every reading shows the meter's count, credit and energy register, and is
compared with what the ledger pushed since a *baseline* (the first reading after the meter
was flagged, or after an operator re-synchronised it):

* a count above the highest count ever pushed is a purchase the ledger does not know
  (someone else charged the meter: the cheat the count is there to catch);
* a count below a purchase confirmed before the reading was taken is a purchase lost;
* credit above baseline credit + the purchases the meter's count says it took - the
  energy measured since x the meter's own price (with a tolerance for the display's
  truncation) is credit from nowhere; credit below it, where that price is known, is
  credit lost (a purchase the meter never added, or a meter debiting more than its price).

A purchase pushed but not confirmed yet is none of these. Whether a purchase the meter's
count includes really added its money is weighed on the credit (``credit_shows``): a meter
that already had the count answers a write of it "already have it", whoever charged it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

from billing.domain.money import ZERO, round_money

FindingKind = Literal["purchase_count_mismatch", "local_credit_mismatch"]


@dataclass(frozen=True)
class MeterShows:
    """What one reading of a local-prepaid meter shows."""

    count: int
    credit: Decimal
    energy_kwh: Decimal
    read_at: datetime


@dataclass(frozen=True)
class Pushed:
    """A purchase the ledger asked for at least once, with its count."""

    count: int
    amount: Decimal
    # When billing learnt that the meter has it (None: pushed, not confirmed yet).
    confirmed_at: datetime | None = None


@dataclass(frozen=True)
class Finding:
    kind: FindingKind
    detail: str


@dataclass(frozen=True)
class Comparison:
    """One reading held against the ledger: a finding per rule (None: it agrees)."""

    count: Finding | None
    credit: Finding | None
    # The most credit the meter may show, before the tolerance (exact, not rounded).
    allowed_credit: Decimal
    shown_count: int

    def confirms(self, count: int) -> bool:
        """True if the reading says the meter took the purchase with this count.

        Only a count that agrees with the ledger confirms: a meter ahead of every push was
        charged by someone else, and its count says nothing about ours.
        """
        return self.count is None and count <= self.shown_count


def next_purchase_count(baseline_count: int, assigned: Iterable[int]) -> int:
    """Return the count the next purchase carries: one above the meter's and every
    count already given out since the baseline."""
    return max([baseline_count, *assigned]) + 1


def compare(
    baseline: MeterShows,
    pushed: Sequence[Pushed],
    shown: MeterShows,
    *,
    price: Decimal | None,
    tolerance: Decimal,
) -> Comparison:
    """Hold what a reading shows against what the ledger pushed since the baseline.

    ``price`` is what the meter debits per kWh (None: the credit check allows no debit).
    """
    pushed_up_to = max([baseline.count, *(p.count for p in pushed)])
    count_finding = None
    if shown.count > pushed_up_to:
        # Charged at the meter by another vending system (or a cheat): surfaced, and the
        # next push counts from the meter's count.
        elsewhere = shown.count - pushed_up_to
        count_finding = Finding(
            "purchase_count_mismatch",
            f"meter shows purchase count {shown.count}; the ledger pushed up to {pushed_up_to}"
            f" ({elsewhere} purchase{'s' if elsewhere > 1 else ''} made elsewhere)",
        )
    else:
        lost = [
            p.count
            for p in pushed
            if p.confirmed_at is not None
            and p.confirmed_at <= shown.read_at
            and p.count > shown.count
        ]
        if shown.count < baseline.count or lost:
            expected = max([baseline.count, *lost])
            count_finding = Finding(
                "purchase_count_mismatch",
                f"meter shows purchase count {shown.count}; it had {expected} already",
            )
    taken, consumed, allowed = _expected_credit(baseline, pushed, shown, price)
    credit_finding = None
    since = f"(purchases {taken} since count {baseline.count}, {round_money(consumed)} used)"
    if shown.credit > allowed + tolerance:
        credit_finding = Finding(
            "local_credit_mismatch",
            f"meter shows {shown.credit} yuan of credit; the ledger allows at most "
            f"{round_money(allowed)} {since}",
        )
    elif price is not None and shown.credit < allowed - tolerance:
        # Only with the meter's price: without it the check cannot know what was used.
        credit_finding = Finding(
            "local_credit_mismatch",
            f"meter shows {shown.credit} yuan of credit; the ledger expects "
            f"{round_money(allowed)} {since}, {round_money(allowed - shown.credit)} missing",
        )
    return Comparison(count_finding, credit_finding, allowed, shown.count)


def credit_shows(
    before: MeterShows,
    pushed: Sequence[Pushed],
    shown: MeterShows,
    *,
    price: Decimal,
    tolerance: Decimal,
) -> bool:
    """True if the meter's credit went up by the purchases its count took since ``before``
    (an earlier read-back), less what it used meanwhile at ``price``.

    A meter answers a purchase whose count it already has "already have it", so a count
    alone cannot tell our purchase from one made at the meter by another vending system
    under the same count: only the money can. Weighed from the read-back just before, not
    from the baseline, so that a meter that has drifted (a standing mismatch) is judged on
    this step alone. A purchase made elsewhere for at least our amount is taken as ours:
    the meter then holds at least the money, and the surplus is a credit mismatch.
    """
    _taken, _consumed, expected = _expected_credit(before, pushed, shown, price)
    return shown.credit >= expected - tolerance


def _expected_credit(
    start: MeterShows, pushed: Sequence[Pushed], shown: MeterShows, price: Decimal | None
) -> tuple[Decimal, Decimal, Decimal]:
    """Return (purchases taken, money used, credit expected) from ``start`` to ``shown``."""
    taken = sum((p.amount for p in pushed if start.count < p.count <= shown.count), start=ZERO)
    consumed = max(ZERO, shown.energy_kwh - start.energy_kwh) * (price or ZERO)
    return taken, consumed, start.credit + taken - consumed
