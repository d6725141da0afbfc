"""Billing's settings keep their environment names; bootstrap hands them to the parts."""

from __future__ import annotations

from decimal import Decimal

import pytest
from billing.bootstrap import build
from billing.settings import BillingSettings
from prepaid_common.bus import InProcessBus
from prepaid_common.db import create_engine


def test_every_billing_variable_keeps_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    names = {
        "PREPAID_SERVICE_PORT": ("service_port", "9102", 9102),
        "PREPAID_BILLING_READING_RETENTION_DAYS": ("billing_reading_retention_days", "30", 30),
        "PREPAID_BILLING_READING_BATCH_MAX": ("billing_reading_batch_max", "250", 250),
        "PREPAID_BILLING_READING_BATCH_WAIT_SECONDS": (
            "billing_reading_batch_wait_seconds",
            "0.2",
            0.2,
        ),
        "PREPAID_BILLING_READING_PREFETCH": ("billing_reading_prefetch", "300", 300),
        "PREPAID_BILLING_POSITION_CACHE_SIZE": ("billing_position_cache_size", "0", 0),
        "PREPAID_BILLING_REFERENCE_CACHE_SECONDS": ("billing_reference_cache_seconds", "1", 1.0),
        "PREPAID_BILLING_LOCAL_CREDIT_TOLERANCE": (
            "billing_local_credit_tolerance",
            "0.05",
            Decimal("0.05"),
        ),
        "PREPAID_BILLING_MAX_POWER_KW": ("billing_max_power_kw", "5000", Decimal(5000)),
        "PREPAID_BILLING_SWEEP_INTERVAL_SECONDS": ("billing_sweep_interval_seconds", "60", 60.0),
    }
    for variable, (_, raw, _) in names.items():
        monkeypatch.setenv(variable, raw)
    settings = BillingSettings()
    for field, _, expected in names.values():
        assert getattr(settings, field) == expected, field


def test_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREPAID_SERVICE_PORT", raising=False)
    monkeypatch.delenv("PREPAID_BILLING_READING_PREFETCH", raising=False)
    settings = BillingSettings()
    assert settings.service_port == 8102
    assert settings.billing_reading_prefetch == 1000


async def test_bootstrap_hands_the_settings_to_the_parts() -> None:
    settings = BillingSettings(
        billing_reading_prefetch=7,
        billing_reading_batch_max=11,
        billing_max_power_kw=Decimal(42),
        billing_sweep_interval_seconds=3,
    )
    engine = create_engine("sqlite+aiosqlite://")
    try:
        service = build(settings, engine=engine, bus=InProcessBus())
        [readings] = service.batch_subscriptions()
        assert (readings.prefetch, readings.max_batch) == (7, 11)
        assert service.handlers.max_power_kw == Decimal(42)
        assert service.calendar.interval == 3
    finally:
        await engine.dispose()
