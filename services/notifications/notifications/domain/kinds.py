"""The kinds of notification, who they are for, and which cannot wait for the morning."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

Channel = Literal["sms", "wechat", "email"]
CHANNELS: tuple[Channel, ...] = ("sms", "wechat", "email")


class Kind(StrEnum):
    LOW_BALANCE_1 = "low_balance_1"
    LOW_BALANCE_2 = "low_balance_2"
    CUT_IMMINENT = "cut_imminent"
    SUPPLY_CUT = "supply_cut"
    SUPPLY_RESTORED = "supply_restored"
    TOP_UP_RECEIVED = "top_up_received"
    METER_OFFLINE = "meter_offline"
    DTU_OFFLINE = "dtu_offline"
    PAYMENT_ATTENTION = "payment_attention"


# Sent at once, quiet hours or not: the supply changes (or is about to), or the tenant has
# just paid and waits for the word.
URGENT = frozenset({Kind.CUT_IMMINENT, Kind.SUPPLY_CUT, Kind.SUPPLY_RESTORED, Kind.TOP_UP_RECEIVED})

# The site's, not a tenant's: sent to the operators' contacts.
FOR_OPERATORS = frozenset({Kind.METER_OFFLINE, Kind.DTU_OFFLINE, Kind.PAYMENT_ATTENTION})

OPERATORS = "operators"  # the recipient of the operators' kinds


def is_urgent(kind: Kind) -> bool:
    """Whether a message of this kind goes out during quiet hours."""
    return kind in URGENT


# Webhook event types a third party may subscribe to, and the kinds each carries.
WEBHOOK_EVENTS: dict[str, frozenset[Kind]] = {
    "payment.received": frozenset({Kind.TOP_UP_RECEIVED}),
    "supply.cut": frozenset({Kind.SUPPLY_CUT}),
    "supply.restored": frozenset({Kind.SUPPLY_RESTORED}),
    "balance.low": frozenset({Kind.LOW_BALANCE_1, Kind.LOW_BALANCE_2}),
    "meter.offline": frozenset({Kind.METER_OFFLINE}),
}


def webhook_event_of(kind: Kind) -> str | None:
    """Return the webhook event type a kind is announced as, or None."""
    for event, kinds in WEBHOOK_EVENTS.items():
        if kind in kinds:
            return event
    return None
