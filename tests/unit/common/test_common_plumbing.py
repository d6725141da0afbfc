"""Plumbing: topic matching, exact column types, contracts on the wire."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prepaid_common.bus import topic_matches
from prepaid_common.contracts import (
    Envelope,
    PaymentSucceededV1,
    ReadingBatchV1,
    ReadingV1,
    open_envelope,
)
from prepaid_common.db import ScaledDecimal, UtcDateTime
from prepaid_common.settings import CommonSettings
from pydantic import SecretStr, ValidationError


@pytest.mark.parametrize(
    ("pattern", "key", "matches"),
    [
        ("reading.v1.#", "reading.v1.M1", True),
        ("reading.v1.#", "reading.v1", True),
        ("reading.v1.#", "reading.v2.M1", False),
        ("reading.*.M1", "reading.v1.M1", True),
        ("reading.*", "reading.v1.M1", False),
        ("#", "anything.at.all", True),
        ("command.request.v1.#", "command.result.v1.M1", False),
    ],
)
def test_topic_matching_follows_amqp(pattern: str, key: str, matches: bool) -> None:
    assert topic_matches(pattern, key) is matches


@given(st.decimals(min_value=Decimal("-1e12"), max_value=Decimal("1e12"), places=2))
def test_scaled_decimal_round_trips_exactly(value: Decimal) -> None:
    column = ScaledDecimal(2)
    stored = column.process_bind_param(value, None)  # type: ignore[arg-type]
    assert isinstance(stored, int)
    assert column.process_result_value(stored, None) == value  # type: ignore[arg-type]


def test_scaled_decimal_refuses_to_round_silently() -> None:
    with pytest.raises(ValueError, match="decimal places"):
        ScaledDecimal(2).process_bind_param(Decimal("1.001"), None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ScaledDecimal(2).process_bind_param(1.5, None)  # type: ignore[arg-type]


def test_utc_datetime_refuses_naive_and_normalises_zones() -> None:
    column = UtcDateTime()
    with pytest.raises(ValueError, match="naive"):
        column.process_bind_param(datetime(2026, 1, 1), None)  # type: ignore[arg-type]
    beijing = timezone(timedelta(hours=8))
    stored = column.process_bind_param(datetime(2026, 1, 1, 8, tzinfo=beijing), None)  # type: ignore[arg-type]
    assert stored == datetime(2026, 1, 1, tzinfo=UTC)
    assert column.process_result_value(datetime(2026, 1, 1), None).tzinfo is UTC  # type: ignore[arg-type, union-attr]


def test_envelope_round_trip_keeps_decimals_exact() -> None:
    reading = ReadingV1(
        meter_id="M1",
        dtu_id="D1",
        read_at=datetime(2026, 1, 1, tzinfo=UTC),
        energy_kwh=Decimal("12345.678"),
        relay="closed",
    )
    envelope = Envelope.from_bytes(Envelope.wrap(reading, producer="t").to_bytes())
    assert envelope.routing_key == "reading.v1.M1"
    assert envelope.payload["energy_kwh"] == "12345.678"
    assert open_envelope(envelope, ReadingV1) == reading
    with pytest.raises(ValueError, match="expected payment"):
        open_envelope(envelope, PaymentSucceededV1)


def test_a_reading_batch_round_trips_in_order_and_refuses_a_bad_reading() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    readings = [
        ReadingV1(meter_id=m, dtu_id="D1", read_at=at, energy_kwh=Decimal(k), relay="closed")
        for m, k in (("M2", "7.125"), ("M1", "0.001"), ("M2", "7.250"))
    ]
    batch = ReadingBatchV1(source="collector-1", readings=readings)
    envelope = Envelope.from_bytes(Envelope.wrap(batch, producer="collector").to_bytes())
    assert envelope.routing_key == "reading.batch.v1.collector-1"
    assert open_envelope(envelope, ReadingBatchV1).readings == readings
    bad = envelope.payload | {
        "readings": [
            *envelope.payload["readings"],
            {**envelope.payload["readings"][0], "energy_kwh": "-1"},
        ]
    }
    with pytest.raises(ValidationError, match=r"readings\.3\.energy_kwh"):
        ReadingBatchV1.model_validate(bad)
    with pytest.raises(ValidationError, match="readings"):
        ReadingBatchV1(source="collector-1", readings=[])


def test_a_wrapped_envelope_is_what_validation_would_build() -> None:
    """wrap() skips re-validating a validated message: the result must be the same."""
    reading = ReadingV1(
        meter_id="M1",
        dtu_id="D1",
        read_at=datetime(2026, 1, 1, tzinfo=UTC),
        energy_kwh=Decimal("1.5"),
        tou_kwh={"peak": Decimal("1.0"), "valley": Decimal("0.5")},
        relay="open",
        power_kw=Decimal("-0.25"),
    )
    wrapped = Envelope.wrap(reading, producer="collector")
    validated = Envelope.model_validate(wrapped.model_dump(mode="json"))
    assert validated == wrapped
    assert validated.model_dump(mode="json") == wrapped.model_dump(mode="json")
    assert Envelope.wrap(reading, producer="collector").message_id != wrapped.message_id


def test_contracts_refuse_bad_values() -> None:
    with pytest.raises(ValidationError):
        ReadingV1(meter_id="M", dtu_id="D", read_at=datetime.now(UTC), energy_kwh=Decimal(-1))
    with pytest.raises(ValidationError):
        PaymentSucceededV1(
            payment_id="p",
            account_id="A",
            amount=Decimal(0),
            method="cash",
            reference="R",
            at=datetime.now(UTC),
        )


def test_production_refuses_the_default_secret() -> None:
    with pytest.raises(ValidationError, match="TOKEN_SECRET"):
        CommonSettings(environment="production")
    with pytest.raises(ValidationError, match="TOKEN_SECRET"):
        CommonSettings(environment="production", token_secret=SecretStr("x"))
    assert CommonSettings(environment="production", token_secret=SecretStr("x" * 40))
