"""Notifications' pure rules: quiet hours, back-off, preferences, what a message means."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from notifications.domain import facts
from notifications.domain.delivery import Backoff, QuietHours, not_before
from notifications.domain.kinds import OPERATORS, URGENT, Channel, Kind, webhook_event_of
from notifications.domain.preferences import Contacts, Preferences, targets
from notifications.domain.texts import render
from prepaid_common.contracts import (
    Envelope,
    Message,
    MeterStatusV1,
    PaymentSucceededV1,
    RelayRequestedV1,
)
from prepaid_common.contracts.messages import BalanceLowV1

SHANGHAI = ZoneInfo("Asia/Shanghai")
QUIET = QuietHours(time(22), time(7), SHANGHAI)
AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def local(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, 1, hour, minute, tzinfo=SHANGHAI)


def test_quiet_hours_wrap_past_midnight_and_release_at_their_end() -> None:
    assert QUIET.contains(local(23))
    assert QUIET.contains(local(3))
    assert not QUIET.contains(local(7))
    assert not QUIET.contains(local(12))
    assert QUIET.release(local(23, 30)) == datetime(2026, 3, 2, 7, 0, tzinfo=SHANGHAI)
    assert QUIET.release(local(3)) == datetime(2026, 3, 1, 7, 0, tzinfo=SHANGHAI)
    assert QUIET.release(local(12)) == local(12)


def test_urgent_messages_ignore_quiet_hours() -> None:
    night = local(23)
    assert not_before(urgent=True, now=night, quiet=QUIET) == night
    assert not_before(urgent=False, now=night, quiet=QUIET) > night
    assert not_before(urgent=False, now=night, quiet=None) == night
    assert Kind.SUPPLY_CUT in URGENT
    assert Kind.CUT_IMMINENT in URGENT
    assert Kind.LOW_BALANCE_1 not in URGENT


@given(st.integers(min_value=1, max_value=30))
def test_backoff_doubles_up_to_its_cap_and_stops_after_the_last_attempt(attempts: int) -> None:
    backoff = Backoff(first_seconds=30, max_seconds=3600, max_attempts=8)
    delay = backoff.delay(attempts)
    if attempts >= 8:
        assert delay is None
        return
    assert delay == timedelta(seconds=min(30 * 2 ** (attempts - 1), 3600))
    following = backoff.delay(attempts + 1)
    assert following is None or following >= delay


def test_targets_follow_contacts_channels_per_kind_and_opt_out() -> None:
    contacts = Contacts(phones=("+8613800000001",), emails=("t@example.com",), openids=("oABC123",))
    everything: frozenset[Channel] = frozenset({"sms", "wechat", "email"})
    every = targets(Kind.SUPPLY_CUT, Preferences(contacts=contacts), everything)
    assert {(t.channel, t.address) for t in every} == {
        ("sms", "+8613800000001"),
        ("email", "t@example.com"),
        ("wechat", "oABC123"),
    }
    chosen = Preferences(contacts=contacts, channels={Kind.SUPPLY_CUT: ("wechat",)})
    assert [t.channel for t in targets(Kind.SUPPLY_CUT, chosen, everything)] == ["wechat"]
    off = Preferences(contacts=contacts, channels={Kind.SUPPLY_CUT: ()})
    assert targets(Kind.SUPPLY_CUT, off, everything) == []
    assert (
        targets(Kind.SUPPLY_CUT, Preferences(contacts=contacts, opted_out=True), everything) == []
    )
    # A channel that is not configured sends nothing, whatever the preferences say.
    assert [t.channel for t in targets(Kind.SUPPLY_CUT, chosen, frozenset[Channel]({"sms"}))] == []


def _read(message: Message) -> list[facts.Fact | facts.Rearm]:
    return facts.read(Envelope.wrap(message, producer="test"))


def test_a_warning_level_is_a_crossing_keyed_on_account_and_level() -> None:
    [fact] = _read(
        BalanceLowV1(account_id="A1", level=2, balance=Decimal("-1"), line=Decimal("0"), at=AT)
    )
    assert isinstance(fact, facts.Fact)
    assert fact.kind == Kind.LOW_BALANCE_2
    assert fact.crossing == facts.Crossing("A1", "low_balance_2", Decimal("0"))
    assert fact.params["balance"] == "-1.00"
    assert webhook_event_of(fact.kind) == "balance.low"


def test_a_relay_request_tells_the_change_and_rearms_the_supply_crossings() -> None:
    rearm, fact = _read(
        RelayRequestedV1(
            request_id="r1", meter_id="M1", account_id="A1", action="trip", reason="short", at=AT
        )
    )
    assert isinstance(rearm, facts.Rearm)
    assert "cut_imminent" in rearm.topics
    assert isinstance(fact, facts.Fact)
    assert (fact.kind, fact.episode) == (Kind.SUPPLY_CUT, "supply_cut:r1")


def test_a_lost_dtu_is_one_message_to_operators_and_each_meter_a_webhook_event() -> None:
    items = _read(
        MeterStatusV1(meter_id="M1", dtu_id="D1", online=False, at=AT, reason="DTU offline: gone")
    )
    told = [i for i in items if isinstance(i, facts.Fact)]
    assert [(f.kind, f.recipient, f.notify) for f in told] == [
        (Kind.DTU_OFFLINE, OPERATORS, True),
        (Kind.METER_OFFLINE, OPERATORS, False),
    ]
    assert _read(MeterStatusV1(meter_id="M1", dtu_id="D1", online=True, at=AT)) == []


def test_every_kind_renders_its_parameters_in_text_and_template() -> None:
    [fact] = _read(
        PaymentSucceededV1(
            payment_id="p1",
            account_id="A1",
            amount=Decimal("50"),
            method="wechat",
            reference="x",
            at=AT,
        )
    )
    assert isinstance(fact, facts.Fact)
    rendered = render(fact.kind, fact.params)
    assert "50.00" in rendered.text
    assert "A1" in rendered.text
    assert rendered.params == (("account", "A1"), ("amount", "50.00"))
    for kind in Kind:
        assert render(kind, {}).title  # every kind has its text; missing values read "-"


@pytest.mark.parametrize("kind", list(Kind))
def test_no_kind_is_left_without_a_text(kind: Kind) -> None:
    assert "{" not in render(kind, {"account": "A"}).text
