"""Relay truth: a meter whose relay disagrees with its decided supply is asked again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from control.domain import (
    CommandToSeal,
    EnvelopeSealer,
    Reconciliation,
    RelayTruth,
    progress_state,
    reconcile,
)
from hypothesis import given
from hypothesis import strategies as st
from prepaid_common.sealing import KeyRing, open_text

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)
POLICY = Reconciliation(
    first_retry=timedelta(seconds=10),
    max_backoff=timedelta(minutes=5),
    alarm_after=timedelta(minutes=10),
)


def truth(**changes: object) -> RelayTruth:
    fields: dict[str, object] = {
        "meter_id": "M1",
        "supply": "off",
        "relay": "closed",
        "differs_since": None,
        "next_attempt_at": None,
        "reissues": 0,
        "alarmed": False,
        "override_until": None,
    }
    fields.update(changes)
    return RelayTruth(**fields)  # type: ignore[arg-type]


def test_an_agreeing_or_unknown_relay_needs_nothing() -> None:
    for agreeing in (truth(relay="open"), truth(supply="on", relay="closed"), truth(relay=None)):
        step = reconcile(agreeing, now=NOW, command_open=False, policy=POLICY)
        assert (step.differs_since, step.reissue, step.alarm) == (None, None, False)
    assert reconcile(truth(supply=None), now=NOW, command_open=False, policy=POLICY).reissue is None


def test_a_disagreement_is_re_issued_after_the_first_wait_and_then_with_back_off() -> None:
    seen = reconcile(truth(), now=NOW, command_open=False, policy=POLICY)
    assert (seen.differs_since, seen.reissue) == (NOW, None)
    assert seen.next_attempt_at == NOW + timedelta(seconds=10)
    state = truth(differs_since=NOW, next_attempt_at=seen.next_attempt_at)
    later = NOW + timedelta(seconds=10)
    first = reconcile(state, now=later, command_open=False, policy=POLICY)
    assert (first.reissue, first.reissues) == ("trip", 1)
    assert first.next_attempt_at == later + timedelta(seconds=20)
    close = reconcile(
        truth(supply="on", relay="open", differs_since=NOW),
        now=later,
        command_open=False,
        policy=POLICY,
    )
    assert close.reissue == "close"


def test_an_unknown_relay_after_a_failed_command_is_asked_again() -> None:
    unknown = truth(relay=None, differs_since=NOW - timedelta(minutes=1))
    assert reconcile(unknown, now=NOW, command_open=False, policy=POLICY).reissue is None
    failed = truth(relay=None, unconfirmed=True, differs_since=NOW - timedelta(minutes=1))
    assert reconcile(failed, now=NOW, command_open=False, policy=POLICY).reissue == "trip"


def test_a_command_in_flight_or_an_operator_override_is_waited_for() -> None:
    due = truth(differs_since=NOW - timedelta(minutes=1))
    assert reconcile(due, now=NOW, command_open=True, policy=POLICY).reissue is None
    overridden = truth(differs_since=NOW - timedelta(minutes=1), override_until=NOW + timedelta(1))
    assert reconcile(overridden, now=NOW, command_open=False, policy=POLICY).reissue is None
    lapsed = truth(differs_since=NOW - timedelta(minutes=1), override_until=NOW)
    assert reconcile(lapsed, now=NOW, command_open=False, policy=POLICY).reissue == "trip"


def test_the_alarm_is_raised_once_after_the_alarm_time() -> None:
    old = truth(differs_since=NOW - timedelta(minutes=10), next_attempt_at=NOW + timedelta(1))
    assert reconcile(old, now=NOW, command_open=True, policy=POLICY).alarm
    raised = truth(differs_since=NOW - timedelta(minutes=11), alarmed=True)
    assert not reconcile(raised, now=NOW, command_open=False, policy=POLICY).alarm


@given(reissues=st.integers(0, 10_000))
def test_never_given_up_and_never_waits_past_the_ceiling(reissues: int) -> None:
    state = truth(differs_since=NOW - timedelta(days=30), reissues=reissues)
    step = reconcile(state, now=NOW, command_open=False, policy=POLICY)
    assert step.reissue == "trip"
    assert step.next_attempt_at is not None
    assert timedelta(seconds=10) <= step.next_attempt_at - NOW <= timedelta(minutes=5)


def test_the_envelope_sealer_seals_the_command_with_its_counter() -> None:
    ring = KeyRing({1: bytes(range(16))})
    later = NOW + timedelta(minutes=2)
    text = EnvelopeSealer(ring).seal(
        CommandToSeal("c1", "M1", "trip", NOW, later, counter=5, algorithm="aes128")
    )
    opened = open_text(text, ring, meter_id="M1", now=NOW, last_counter=4)
    assert (opened.kind, opened.counter, opened.algorithm) == ("trip", 5, "aes128")
    assert opened.payload == {"command_id": "c1"}


def test_a_group_commands_meters_are_queued_sent_confirmed_or_failed() -> None:
    assert progress_state(status="pending", supply="off", relay="closed") == "queued"
    assert progress_state(status="sent", supply="off", relay="closed") == "sent"
    assert progress_state(status="succeeded", supply="off", relay=None) == "confirmed"
    assert progress_state(status="failed", supply="off", relay="closed") == "failed"
    assert progress_state(status="expired", supply="off", relay=None) == "failed"
    # A failure the reconciliation made good since.
    assert progress_state(status="failed", supply="off", relay="open") == "confirmed"
