"""Purchases pushed to local-prepaid meters: what is written, and whether it landed.

A local-prepaid meter keeps its own credit. Each purchase carries the meter's next purchase
count; the meter takes only its count + 1, treats its own count again as a retried write
(success, nothing added) and refuses anything else. So a purchase may be written any number
of times, and the count read back afterwards says whether the meter has it.

Except when the count was taken by a purchase made at the meter by another vending system:
the meter answers "already have it" just the same, and never adds our money. So the count is
read before writing: a meter that shows the purchase's count already is not written to, and
billing weighs the meter's credit to tell whose purchase it has.
"""

from __future__ import annotations

from decimal import Decimal

from collector.domain.commands import Purchase, RefusedCommand
from collector.domain.decoding import encode_value
from collector.domain.planning import ReadBlock, plan_reads
from collector.domain.profiles import MeterProfile, Profile

_COUNT_LIMITS = {"uint16": 0xFFFF, "uint32": 0xFFFFFFFF}
_AMOUNT_LIMITS = {
    "uint16": 0xFFFF,
    "int16": 0x7FFF,
    "uint32": 0xFFFFFFFF,
    "int32": 0x7FFFFFFF,
}


def local_credit_profile(profile: Profile) -> MeterProfile:
    """Return the profile if its meters keep local credit; RefusedCommand otherwise."""
    if not isinstance(profile, MeterProfile) or profile.local_credit is None:
        raise RefusedCommand(f"profile {profile.name} keeps no local credit")
    return profile


def purchase_words(profile: Profile, purchase: Purchase) -> tuple[int, list[int]]:
    """Return (address, words) of the one FC16 write that pushes a purchase.

    RefusedCommand if the model keeps no local credit or the values do not fit its registers.
    """
    model = local_credit_profile(profile)
    assert model.local_credit is not None
    amount, count = model.local_credit.purchase_amount, model.local_credit.purchase_count
    if amount is None or count is None:
        raise RefusedCommand(f"profile {profile.name} takes purchases in sealed envelopes only")
    raw = purchase.amount / amount.scale
    if purchase.amount <= 0 or raw != raw.to_integral_value():
        raise RefusedCommand(
            f"purchase amount {purchase.amount} is not a positive multiple of {amount.scale}"
        )
    if raw > _AMOUNT_LIMITS[amount.type]:
        raise RefusedCommand(f"purchase amount {purchase.amount} does not fit a {amount.type}")
    if not 1 <= purchase.count <= _COUNT_LIMITS[count.type]:
        raise RefusedCommand(f"purchase count {purchase.count} does not fit a {count.type}")
    words = encode_value(purchase.amount, amount, model.word_order)
    words += encode_value(Decimal(purchase.count), count, model.word_order)
    return amount.address, words


def local_credit_blocks(profile: MeterProfile) -> list[ReadBlock]:
    """Return the reads that get a meter's credit and purchase count back."""
    spans = [(spec.address, spec.words) for spec in profile.local_credit_reads()]
    return plan_reads(spans, max_gap=profile.max_gap)


def purchase_not_due(purchase_count: int, count_before: int) -> str | None:
    """Return why a purchase is not written to a meter showing ``count_before`` (None: write
    it). Not a refusal: the meter may have it from an earlier attempt whose answer was lost,
    or another purchase took the count; billing tells which by the credit."""
    if count_before >= purchase_count:
        return (
            f"meter already shows purchase count {count_before}; "
            f"purchase {purchase_count} not written"
        )
    return None


def purchase_landed(purchase: Purchase, count_after: int) -> str | None:
    """Return why a written purchase did not land (None: the meter has it)."""
    if count_after == purchase.count:
        return None
    return f"purchase count is {count_after} after pushing purchase {purchase.count}"
