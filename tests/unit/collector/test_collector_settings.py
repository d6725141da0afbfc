"""The collector's environment: replica name, listener, gaps, clocks."""

from __future__ import annotations

import pytest
from collector.settings import CollectorSettings


def test_collector_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "PREPAID_COLLECTOR_INSTANCE": "collector-2",
        "PREPAID_COLLECTOR_LISTEN_PORT": "0",
        "PREPAID_COLLECTOR_LEASE_SECONDS": "9",
        "PREPAID_COLLECTOR_REQUEST_GAP_SECONDS": "0.02",
        "PREPAID_COLLECTOR_CLOCK_CHECK_SECONDS": "600",
        "PREPAID_COLLECTOR_METER_TIMEZONE": "Asia/Shanghai",
    }.items():
        monkeypatch.setenv(name, value)
    settings = CollectorSettings()
    assert settings.collector_instance == "collector-2"
    assert settings.collector_listen_port == 0
    assert settings.collector_lease_seconds == 9
    assert settings.collector_request_gap_seconds == 0.02
    assert settings.collector_clock_check_seconds == 600
    assert settings.collector_meter_timezone == "Asia/Shanghai"


def test_collector_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PREPAID_COLLECTOR_INSTANCE", "PREPAID_COLLECTOR_LISTEN_PORT"):
        monkeypatch.delenv(name, raising=False)
    settings = CollectorSettings()
    assert (settings.collector_instance, settings.collector_listen_port) == (None, 9502)
    assert settings.collector_request_gap_seconds == 0.0
