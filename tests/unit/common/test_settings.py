"""Every service reads its settings the one way: a CommonSettings subclass, ``PREPAID_<FIELD>``."""

from __future__ import annotations

from pathlib import Path

import pytest
from prepaid_common.settings import CommonSettings
from pydantic import Field, SecretStr


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


def test_secrets_are_refused_unless_the_environment_says_development(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PREPAID_ENVIRONMENT", raising=False)
    monkeypatch.delenv("PREPAID_TOKEN_SECRET", raising=False)
    with pytest.raises(ValueError, match="TOKEN_SECRET"):
        ExampleSettings()  # the default environment is not development
    with pytest.raises(ValueError, match="TOKEN_SECRET"):
        ExampleSettings(token_secret=SecretStr("x" * 31))
    with pytest.raises(ValueError, match="SERVICE_CREDENTIAL"):
        ExampleSettings(token_secret=SecretStr("x" * 32), service_credential=SecretStr(""))
    assert ExampleSettings(environment="development").environment == "development"
    strong = ExampleSettings(token_secret=SecretStr("x" * 32))
    # Unset, the service credential is derived from the shared secret, never the secret itself.
    assert len(strong.effective_service_credential()) == 64
    assert strong.effective_service_credential() != "x" * 32


def test_secrets_are_read_from_files(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("t" * 40 + "\n")
    (tmp_path / "credential").write_text("c" * 40 + "\n")
    settings = ExampleSettings(
        environment="production",
        token_secret_file=tmp_path / "token",
        service_credential_file=tmp_path / "credential",
    )
    assert settings.token_secret.get_secret_value() == "t" * 40
    assert settings.effective_service_credential() == "c" * 40
