"""Every service reads its settings the one way: a CommonSettings subclass, ``PREPAID_<FIELD>``."""

from __future__ import annotations

import pytest
from prepaid_common.settings import CommonSettings
from pydantic import Field


class ExampleSettings(CommonSettings):
    """A service's settings as every service writes them."""

    service_port: int = Field(default=8199, ge=1, le=65535)
    billing_reading_prefetch: int = Field(default=1000, ge=1)


def test_a_services_own_fields_are_read_under_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREPAID_BILLING_READING_PREFETCH", "300")
    monkeypatch.setenv("PREPAID_SERVICE_PORT", "9001")
    monkeypatch.setenv("PREPAID_BUS_PREFIX", "site-7")
    settings = ExampleSettings()
    assert (settings.billing_reading_prefetch, settings.service_port) == (300, 9001)
    assert settings.bus_prefix == "site-7"


def test_defaults_hold_without_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREPAID_BILLING_READING_PREFETCH", raising=False)
    monkeypatch.delenv("PREPAID_SERVICE_PORT", raising=False)
    settings = ExampleSettings()
    assert (settings.billing_reading_prefetch, settings.service_port) == (1000, 8199)


def test_a_bad_value_is_refused_not_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREPAID_SERVICE_PORT", "0")
    with pytest.raises(ValueError, match="service_port"):
        ExampleSettings()
