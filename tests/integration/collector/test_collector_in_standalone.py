"""Under standalone (``make run``) the collector honours every setting it has in a cluster.

Standalone builds each service through its own bootstrap from one settings object, so a
site's own meter profiles (``PREPAID_PROFILES_DIR``), request timeouts, gaps, clock checks
and the meters' time zone reach the collector as they do when it runs alone.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from collector.profiles import SHIPPED_PROFILES_DIR
from pydantic import SecretStr
from standalone.app import Standalone
from standalone.settings import StandaloneSettings
from testkit import wait_until
from testkit.field import FakeBus, ModbusMeter, serve_raw
from testkit.standalone import ADMIN_PASSWORD, admin_client


def site_profiles(directory: Path) -> Path:
    """A site's own meter model: the reference meter under the site's name for it."""
    directory.mkdir()
    shipped = (SHIPPED_PROFILES_DIR / "reference-prepaid.toml").read_text(encoding="utf-8")
    assert 'name = "reference-prepaid"' in shipped
    (directory / "site-model.toml").write_text(
        shipped.replace('name = "reference-prepaid"', 'name = "site-model"'), encoding="utf-8"
    )
    return directory


def settings_for(sqlite_url: str, data_dir: Path) -> StandaloneSettings:
    return StandaloneSettings(
        data_dir=data_dir,
        database_url=sqlite_url,
        amqp_url="",
        simulator=False,
        poll_interval_seconds=0.5,
        collector_listen_port=None,
        token_secret=SecretStr("site-profile-test-secret-0123456789"),
        admin_password=SecretStr(ADMIN_PASSWORD),
    )


def test_the_collectors_environment_reaches_it_under_standalone(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {
        "PREPAID_PROFILES_DIR": str(site_profiles(tmp_path / "profiles")),
        "PREPAID_REQUEST_TIMEOUT_SECONDS": "2.5",
        "PREPAID_COLLECTOR_REQUEST_GAP_SECONDS": "0.02",
        "PREPAID_COLLECTOR_CLOCK_CHECK_SECONDS": "600",
        "PREPAID_COLLECTOR_METER_TIMEZONE": "Asia/Shanghai",
        "PREPAID_COLLECTOR_INSTANCE": "site-pc",
        "PREPAID_COLLECTOR_LEASE_SECONDS": "9",
    }.items():
        monkeypatch.setenv(name, value)
    collector = Standalone(settings_for(sqlite_url, tmp_path / "data")).collector
    assert "site-model" in collector.profiles
    assert "reference-prepaid" in collector.profiles  # the shipped ones stay
    assert collector.request_timeout == 2.5
    assert collector.request_gap == 0.02
    assert collector.clock_check_interval == 600
    assert collector.meter_timezone == ZoneInfo("Asia/Shanghai")
    assert collector.instance == "site-pc"
    assert collector.lease_seconds == 9
    assert collector.poll_interval == 0.5


async def test_a_meter_of_a_sites_own_profile_is_registered_and_read(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREPAID_PROFILES_DIR", str(site_profiles(tmp_path / "profiles")))
    product = Standalone(settings_for(sqlite_url, tmp_path / "data"))
    bus = FakeBus(modbus={3: ModbusMeter(unit=3)})
    await product.start()
    try:
        async with admin_client(product) as api, serve_raw(bus) as (host, port):
            registered = await api.post(
                "/api/v1/dtus",
                json={
                    "id": "SITE1",
                    "name": "site serial server",
                    "kind": "rtu-over-tcp",
                    "host": host,
                    "port": port,
                    "meters": [{"id": "SITE1-03", "unit_id": 3, "profile": "site-model"}],
                },
            )
            assert registered.status_code == 201, registered.text

            async def read() -> dict[str, object] | None:
                meter = (await api.get("/api/v1/meters/SITE1-03")).json()
                return meter if meter.get("last_reading") else None

            meter = await wait_until(read)
            assert meter["profile"] == "site-model"
            reading = meter["last_reading"]
            assert isinstance(reading, dict)
            assert Decimal(reading["energy_kwh"]) >= 0
    finally:
        await product.stop()
