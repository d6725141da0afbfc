"""Command life cycle decisions and the plain envelope."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from control.domain import (
    MAX_ATTEMPTS,
    CommandToSeal,
    PlainCommandSealer,
    decide_on_result,
)

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)
LATER = NOW + timedelta(minutes=2)


def test_success_is_final() -> None:
    decision = decide_on_result(
        status="sent", succeeded=True, attempts=1, expires_at=LATER, now=NOW
    )
    assert decision is not None
    assert (decision.status, decision.retry) == ("succeeded", False)


def test_failure_is_retried_while_attempts_remain() -> None:
    decision = decide_on_result(
        status="sent", succeeded=False, attempts=1, expires_at=LATER, now=NOW
    )
    assert decision is not None
    assert (decision.status, decision.retry) == ("sent", True)


def test_failure_after_the_last_attempt_fails_the_command() -> None:
    decision = decide_on_result(
        status="sent", succeeded=False, attempts=MAX_ATTEMPTS, expires_at=LATER, now=NOW
    )
    assert decision is not None
    assert (decision.status, decision.retry) == ("failed", False)


def test_failure_after_expiry_expires_the_command() -> None:
    decision = decide_on_result(status="sent", succeeded=False, attempts=1, expires_at=NOW, now=NOW)
    assert decision is not None
    assert decision.status == "expired"


def test_a_result_for_a_final_command_changes_nothing() -> None:
    for status in ("succeeded", "failed", "expired"):
        assert (
            decide_on_result(status=status, succeeded=True, attempts=1, expires_at=LATER, now=NOW)
            is None
        )


def test_plain_envelope_names_meter_action_and_expiry() -> None:
    sealed = PlainCommandSealer().seal(CommandToSeal("c1", "M1", "trip", NOW, LATER))
    assert json.loads(sealed) == {
        "command_id": "c1",
        "meter_id": "M1",
        "action": "trip",
        "expires_at": LATER.isoformat(),
    }


def test_plain_envelope_of_a_purchase_covers_amount_and_count() -> None:
    sealed = PlainCommandSealer().seal(
        CommandToSeal("c1", "M1", "credit", NOW, LATER, Decimal("50.00"), 5)
    )
    assert json.loads(sealed) == {
        "command_id": "c1",
        "meter_id": "M1",
        "action": "credit",
        "expires_at": LATER.isoformat(),
        "amount": "50.00",
        "purchase_count": 5,
    }


def test_a_failure_that_cannot_change_is_not_retried() -> None:
    decision = decide_on_result(
        status="sent", succeeded=False, attempts=1, expires_at=LATER, now=NOW, retryable=False
    )
    assert decision is not None
    assert (decision.status, decision.retry) == ("failed", False)
