"""What a bus message means for notifications: a fact to tell, or a crossing re-armed.

A fact has an episode: the one thing it is about (a payment, a relay request, the n-th
crossing of a warning level). Messages are keyed on it, so a fact heard again (a redelivery,
billing saying a level again on the next reading) never sends a second message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from prepaid_common.contracts import (
    BalanceChangedV1,
    Envelope,
    MeterStatusV1,
    PaymentSucceededV1,
    RelayRequestedV1,
    open_envelope,
)
from prepaid_common.contracts.messages import BalanceLowV1, CutImminentV1, PaymentIssueV1

from notifications.domain.kinds import OPERATORS, Kind


@dataclass(frozen=True)
class Crossing:
    """A level an account goes through: told once until re-armed."""

    account_id: str
    topic: str  # the kind
    line: Decimal | None  # re-armed by a balance above it (None: by the supply changing)


@dataclass(frozen=True)
class Fact:
    kind: Kind
    recipient: str  # an account id, or OPERATORS
    # The episode: unique per thing told (a crossing adds its count when it is opened).
    episode: str
    at: datetime
    params: dict[str, str] = field(default_factory=dict)
    crossing: Crossing | None = None
    # False: announced to webhooks only (a lost DTU's meters: its operators hear of the DTU).
    notify: bool = True

    @property
    def account_id(self) -> str | None:
        return None if self.recipient == OPERATORS else self.recipient


@dataclass(frozen=True)
class Rearm:
    """Close an account's open crossings: those whose line is below ``balance`` (any
    balance: None), and those of ``topics`` whatever their line."""

    account_id: str
    balance: Decimal | None = None
    topics: frozenset[str] = frozenset()


TOPICS = (
    BalanceLowV1.TYPE,
    CutImminentV1.TYPE,
    RelayRequestedV1.TYPE,
    PaymentSucceededV1.TYPE,
    BalanceChangedV1.TYPE,
    MeterStatusV1.TYPE,
    PaymentIssueV1.TYPE,
)

_SUPPLY_TOPICS = frozenset({Kind.CUT_IMMINENT.value, Kind.LOW_BALANCE_2.value})


def _money(value: Decimal) -> str:
    return f"{value:.2f}"


def read(envelope: Envelope) -> list[Fact | Rearm]:
    """Return what a message means: facts to tell and crossings to re-arm."""
    kind = envelope.type
    if kind == BalanceLowV1.TYPE:
        low = open_envelope(envelope, BalanceLowV1)
        topic = Kind.LOW_BALANCE_1 if low.level == 1 else Kind.LOW_BALANCE_2
        return [
            Fact(
                topic,
                low.account_id,
                episode=f"{topic.value}:{low.account_id}",
                at=low.at,
                params={
                    "account": low.account_id,
                    "balance": _money(low.balance),
                    "line": _money(low.line),
                },
                crossing=Crossing(low.account_id, topic.value, low.line),
            )
        ]
    if kind == CutImminentV1.TYPE:
        imminent = open_envelope(envelope, CutImminentV1)
        return [
            Fact(
                Kind.CUT_IMMINENT,
                imminent.account_id,
                episode=f"cut_imminent:{imminent.account_id}",
                at=imminent.at,
                params={"account": imminent.account_id, "balance": _money(imminent.balance)},
                crossing=Crossing(imminent.account_id, Kind.CUT_IMMINENT.value, None),
            )
        ]
    if kind == RelayRequestedV1.TYPE:
        relay = open_envelope(envelope, RelayRequestedV1)
        told = Kind.SUPPLY_CUT if relay.action == "trip" else Kind.SUPPLY_RESTORED
        return [
            # The supply changed: a deferred cut is no longer imminent, a level 2 can recur.
            Rearm(relay.account_id, topics=_SUPPLY_TOPICS),
            Fact(
                told,
                relay.account_id,
                episode=f"{told.value}:{relay.request_id}",
                at=relay.at,
                params={
                    "account": relay.account_id,
                    "meter": relay.meter_id,
                    "reason": relay.reason,
                },
            ),
        ]
    if kind == PaymentSucceededV1.TYPE:
        paid = open_envelope(envelope, PaymentSucceededV1)
        return [
            Fact(
                Kind.TOP_UP_RECEIVED,
                paid.account_id,
                episode=f"top_up_received:{paid.payment_id}",
                at=paid.at,
                params={
                    "account": paid.account_id,
                    "amount": _money(paid.amount),
                    "method": paid.method,
                    "payment": paid.payment_id,
                },
            )
        ]
    if kind == BalanceChangedV1.TYPE:
        changed = open_envelope(envelope, BalanceChangedV1)
        return [Rearm(changed.account_id, balance=changed.balance)]
    if kind == MeterStatusV1.TYPE:
        status = open_envelope(envelope, MeterStatusV1)
        if status.online:
            return []
        if status.reason.startswith("DTU offline"):
            # Every meter of a lost DTU says so with the same instant: one message per DTU.
            return [
                Fact(
                    Kind.DTU_OFFLINE,
                    OPERATORS,
                    episode=f"dtu_offline:{status.dtu_id}:{status.at.isoformat()}",
                    at=status.at,
                    params={"dtu": status.dtu_id, "reason": status.reason},
                ),
                _meter_offline(status, notify=False),
            ]
        return [_meter_offline(status)]
    if kind == PaymentIssueV1.TYPE:
        issue = open_envelope(envelope, PaymentIssueV1)
        return [
            Fact(
                Kind.PAYMENT_ATTENTION,
                OPERATORS,
                episode=f"payment_attention:{issue.issue_id}",
                at=issue.at,
                params={
                    "issue": issue.kind,
                    "provider": issue.provider,
                    "order": issue.out_trade_no or "-",
                    "detail": issue.detail[:200],
                },
            )
        ]
    return []


def _meter_offline(status: MeterStatusV1, *, notify: bool = True) -> Fact:
    return Fact(
        Kind.METER_OFFLINE,
        OPERATORS,
        episode=f"meter_offline:{status.meter_id}:{status.at.isoformat()}",
        at=status.at,
        params={"meter": status.meter_id, "dtu": status.dtu_id, "reason": status.reason[:200]},
        notify=notify,
    )
