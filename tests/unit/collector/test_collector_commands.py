"""The command openers' refusals (plain and sealed), and what a relay command writes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from collector.domain import (
    OpenedCommand,
    PlainCommandOpener,
    RefusedCommand,
    SealedCommandOpener,
    check_capable,
    expected_relay,
    plain_envelope,
    relay_command_value,
)
from collector.profiles import load_profiles
from prepaid_common.sealing import Command, KeyRing, seal_text

NOW = datetime(2025, 5, 1, 8, 0, tzinfo=UTC)


def envelope(**changes: object) -> str:
    fields: dict[str, object] = {
        "meter_id": "DTU0001-01",
        "action": "trip",
        "command_id": "cmd-1",
        "expires_at": (NOW + timedelta(minutes=5)).isoformat(),
    }
    fields.update(changes)
    return json.dumps(fields)


def test_a_good_envelope_opens() -> None:
    opened = PlainCommandOpener().open(envelope(), meter_id="DTU0001-01", now=NOW)
    assert opened == OpenedCommand(command_id="cmd-1", action="trip")
    built = plain_envelope(
        meter_id="M", action="close", command_id="c", expires_at=NOW + timedelta(seconds=1)
    )
    assert PlainCommandOpener().open(built, meter_id="M", now=NOW).action == "close"


@pytest.mark.parametrize(
    ("sealed", "reason"),
    [
        (envelope(meter_id="DTU0001-02"), "envelope is for meter DTU0001-02, not DTU0001-01"),
        (envelope(expires_at=NOW.isoformat()), "expired"),
        (envelope(expires_at=(NOW - timedelta(days=1)).isoformat()), "expired"),
        (envelope(action="explode"), "malformed envelope"),
        (envelope(expires_at="2025-05-01T09:00:00"), "malformed envelope"),  # no zone
        (envelope(extra="field"), "malformed envelope"),
        ("not json", "malformed envelope"),
        (json.dumps(["a", "list"]), "malformed envelope"),
        (json.dumps({"meter_id": "DTU0001-01"}), "malformed envelope"),
    ],
)
def test_the_plain_opener_refuses(sealed: str, reason: str) -> None:
    with pytest.raises(RefusedCommand) as refused:
        PlainCommandOpener().open(sealed, meter_id="DTU0001-01", now=NOW)
    assert refused.value.reason.startswith(reason)


def test_relay_command_values_come_from_the_profile() -> None:
    profiles = load_profiles()
    assert relay_command_value(profiles["reference-prepaid"], "trip") == (0x0011, 0x001A)
    assert relay_command_value(profiles["reference-prepaid"], "close") == (0x0011, 0x001B)
    with pytest.raises(RefusedCommand, match="no relay control"):
        relay_command_value(profiles["acrel-ddsy1352"], "trip")
    assert (expected_relay("trip"), expected_relay("close")) == ("open", "closed")


def test_the_sealed_opener_takes_each_counter_once() -> None:
    ring = KeyRing({1: bytes(range(16))})
    now = datetime(2026, 5, 1, tzinfo=UTC)
    opener = SealedCommandOpener(ring)

    def sealed(counter: int, kind: str = "trip", **payload: object) -> str:
        expires = now + timedelta(minutes=2)
        body = {"command_id": f"c{counter}", **payload}
        return seal_text(Command("M1", kind, counter, now, expires, body), ring)  # type: ignore[arg-type]

    assert opener.open(sealed(3), meter_id="M1", now=now).action == "trip"
    for stale in (3, 2):
        with pytest.raises(RefusedCommand) as refused:
            opener.open(sealed(stale), meter_id="M1", now=now)
        assert refused.value.kind == "replayed"
        assert refused.value.security
    credit = opener.open(
        sealed(4, "credit", amount="10.00", purchase_count=2), meter_id="M1", now=now
    )
    assert credit.purchase is not None
    assert (credit.purchase.amount, credit.purchase.count) == (Decimal("10.00"), 2)
    assert opener.last_counter == {"M1": 4}


def test_hold_power_is_carried_out_where_the_model_has_it() -> None:
    profiles = load_profiles()
    check_capable(profiles["dlt645-2007"], "hold_on")
    check_capable(profiles["reference-prepaid"], "hold_off")
    with pytest.raises(RefusedCommand, match="no hold-power control"):
        check_capable(profiles["eastron-sdm120"], "hold_off")
