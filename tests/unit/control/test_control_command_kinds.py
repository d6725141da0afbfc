"""Every command kind sealed by control opens at the point of execution with what it needs:
a time set its time, alarm levels both levels, a power limit its kW, a purchase its amount
and count."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from collector.domain import PlainCommandOpener, SealedCommandOpener
from collector.domain.commands import AlarmLevels
from control.domain import CommandToSeal, EnvelopeSealer, PlainCommandSealer, command_payload
from prepaid_common.contracts import CommandAction
from prepaid_common.contracts.api.control import AlarmThresholds, CommandBody, OperatorCommand
from prepaid_common.sealing import KeyRing
from pydantic import ValidationError

RING = KeyRing({1: bytes(range(16))})
ISSUED = datetime(2026, 5, 1, 12, 0, 7, tzinfo=UTC)
EXPIRES = ISSUED + timedelta(minutes=2)
NOW = ISSUED + timedelta(seconds=5)
LEVELS = AlarmThresholds(first=Decimal("20.00"), second=Decimal("5.00"))


def to_seal(action: CommandAction, counter: int = 1, **extra: object) -> CommandToSeal:
    return CommandToSeal(
        "c1",
        "M-1",
        action,
        ISSUED,
        EXPIRES,
        counter=counter,
        **extra,  # type: ignore[arg-type]
    )


def test_a_time_set_carries_the_time_it_is_sealed_at() -> None:
    assert command_payload(to_seal("time_set")) == {
        "command_id": "c1",
        "time": "2026-05-01T12:00:07+00:00",
    }


def test_alarm_levels_are_sealed_with_the_command() -> None:
    assert command_payload(to_seal("alarm_thresholds", alarm_thresholds=LEVELS)) == {
        "command_id": "c1",
        "first": "20.00",
        "second": "5.00",
    }


@pytest.mark.parametrize("sealed", ["plain", "3des"])
def test_every_kind_opens_at_the_collector_with_its_parameters(sealed: str) -> None:
    cases: list[tuple[CommandAction, dict[str, object]]] = [
        ("trip", {}),
        ("close", {}),
        ("hold_on", {}),
        ("hold_off", {}),
        ("time_set", {}),
        ("credit", {"amount": Decimal("50.00"), "purchase_count": 3}),
        ("alarm_thresholds", {"alarm_thresholds": LEVELS}),
        ("power_limit", {"power_limit_kw": Decimal("3.50")}),
    ]
    sealer = PlainCommandSealer() if sealed == "plain" else EnvelopeSealer(RING)
    opener = PlainCommandOpener() if sealed == "plain" else SealedCommandOpener(RING)
    for counter, (action, extra) in enumerate(cases, start=1):
        envelope = sealer.seal(to_seal(action, counter, **extra))
        opened = opener.open(envelope, meter_id="M-1", now=NOW)
        assert (opened.command_id, opened.action) == ("c1", action)
        assert opened.time == (ISSUED if action == "time_set" else None)
        assert opened.alarms == (
            AlarmLevels(Decimal("20.00"), Decimal("5.00")) if action == "alarm_thresholds" else None
        )
        assert opened.power_limit_kw == (Decimal("3.50") if action == "power_limit" else None)
        if action == "credit":
            assert opened.purchase is not None
            assert (opened.purchase.amount, opened.purchase.count) == (Decimal("50.00"), 3)


def test_a_power_limit_is_sealed_with_the_command_and_belongs_to_its_action() -> None:
    assert command_payload(to_seal("power_limit", power_limit_kw=Decimal("3.50"))) == {
        "command_id": "c1",
        "kw": "3.50",
    }
    with pytest.raises(ValidationError, match="power_limit_kw is given with"):
        CommandBody(action="power_limit")
    with pytest.raises(ValidationError, match="power_limit_kw is given with"):
        CommandBody.model_validate({"action": "trip", "power_limit_kw": "3.50"})
    for bad in ("0", "-1", "3.505", "1000", "NaN", "Infinity"):
        with pytest.raises(ValidationError):
            CommandBody.model_validate({"action": "power_limit", "power_limit_kw": bad})
    command = OperatorCommand.model_validate(
        {"meter_id": "M-1", "action": "power_limit", "operator": "op", "power_limit_kw": "3.5"}
    )
    assert command.power_limit_kw == Decimal("3.5")


def test_alarm_levels_are_ordered_and_belong_to_their_action() -> None:
    with pytest.raises(ValidationError, match="second may not be above first"):
        AlarmThresholds(first=Decimal("5"), second=Decimal("6"))
    with pytest.raises(ValidationError, match="alarm_thresholds is given with"):
        CommandBody(action="alarm_thresholds")
    with pytest.raises(ValidationError, match="alarm_thresholds is given with"):
        CommandBody.model_validate(
            {"action": "trip", "alarm_thresholds": {"first": "1", "second": "0"}}
        )
    with pytest.raises(ValidationError):
        AlarmThresholds(first=Decimal("1.001"), second=Decimal(0))
    command = OperatorCommand(
        meter_id="M-1", action="alarm_thresholds", operator="op", alarm_thresholds=LEVELS
    )
    assert command.alarm_thresholds == LEVELS
