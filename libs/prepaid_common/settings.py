"""Typed settings read from the environment (prefix ``PREPAID_``)."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEVELOPMENT_SECRET = "development-only-secret-change-me"

# The shortest secret a process accepts outside an explicit development environment.
MIN_SECRET_LENGTH = 32


class CommonSettings(BaseSettings):
    """Settings every process reads; each service's ``settings.py`` subclasses it.

    A field is read from ``PREPAID_<FIELD>``: a service's own fields carry its name
    (``billing_reading_prefetch`` is ``PREPAID_BILLING_READING_PREFETCH``), and a service's
    HTTP port is its ``service_port`` field (``PREPAID_SERVICE_PORT``) with its own default.

    The environment is production unless ``PREPAID_ENVIRONMENT=development`` says otherwise:
    development defaults (the public token secret, a short or empty secret) are refused
    without it, so a forgotten variable never runs a site on a public secret.
    """

    model_config = SettingsConfigDict(
        env_prefix="PREPAID_", env_nested_delimiter="__", extra="ignore"
    )

    environment: Literal["development", "production"] = "production"
    database_url: str = "sqlite+aiosqlite:///data/prepaid.db"
    # Empty means the in-process bus (standalone mode only).
    amqp_url: str = ""
    bus_prefix: str = "prepaid"
    # Shards of the readings (prepaid_common.contracts.sharding): the same on every collector
    # and billing replica; 1 is one readings queue, as before sharding existed.
    reading_shards: int = Field(default=1, ge=1, le=1024)
    log_level: str = "INFO"
    log_format: Literal["json", "text"] = "json"
    token_secret: SecretStr = SecretStr(DEVELOPMENT_SECRET)
    # A file holding the token secret (a mounted Secret); wins over PREPAID_TOKEN_SECRET.
    token_secret_file: Path | None = None
    # Sent by the gateway to the services' internal APIs and checked by them. Unset: derived
    # from the token secret, which every process of one installation already shares.
    service_credential: SecretStr | None = None
    service_credential_file: Path | None = None
    # Where a service run alone listens: loopback unless a deployment opens it (0.0.0.0).
    listen_host: str = "127.0.0.1"

    @model_validator(mode="after")
    def _refuse_weak_secrets(self) -> CommonSettings:
        self._read_secret_files()
        self.check_secrets()
        return self

    def check_secrets(self) -> None:
        """Raise unless the secrets are strong, or the environment is development."""
        if self.environment == "development":
            return
        secret = self.token_secret.get_secret_value()
        if secret == DEVELOPMENT_SECRET or len(secret) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"PREPAID_TOKEN_SECRET must be a real secret of {MIN_SECRET_LENGTH} or more "
                "characters (the development default is taken only with "
                "PREPAID_ENVIRONMENT=development)"
            )
        if (
            self.service_credential is not None
            and len(self.service_credential.get_secret_value()) < MIN_SECRET_LENGTH
        ):
            raise ValueError(
                f"PREPAID_SERVICE_CREDENTIAL must have {MIN_SECRET_LENGTH} or more characters"
            )

    def _read_secret_files(self) -> None:
        if self.token_secret_file is not None:
            self.token_secret = SecretStr(self.token_secret_file.read_text().strip())
        if self.service_credential_file is not None:
            self.service_credential = SecretStr(self.service_credential_file.read_text().strip())

    def effective_service_credential(self) -> str:
        """Return the credential internal calls carry (given, or derived from the secret)."""
        if self.service_credential is not None:
            return self.service_credential.get_secret_value()
        return hmac.new(
            self.token_secret.get_secret_value().encode(),
            b"prepaid internal service credential",
            hashlib.sha256,
        ).hexdigest()
