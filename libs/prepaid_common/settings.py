"""Typed settings read from the environment (prefix ``PREPAID_``)."""

from __future__ import annotations

from typing import Literal

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEVELOPMENT_SECRET = "development-only-secret-change-me"


class CommonSettings(BaseSettings):
    """Settings every process reads; each service's ``settings.py`` subclasses it.

    A field is read from ``PREPAID_<FIELD>``: a service's own fields carry its name
    (``billing_reading_prefetch`` is ``PREPAID_BILLING_READING_PREFETCH``), and a service's
    HTTP port is its ``service_port`` field (``PREPAID_SERVICE_PORT``) with its own default.
    """

    model_config = SettingsConfigDict(
        env_prefix="PREPAID_", env_nested_delimiter="__", extra="ignore"
    )

    environment: Literal["development", "production"] = "development"
    database_url: str = "sqlite+aiosqlite:///data/prepaid.db"
    # Empty means the in-process bus (standalone mode only).
    amqp_url: str = ""
    bus_prefix: str = "prepaid"
    log_level: str = "INFO"
    log_format: Literal["json", "text"] = "json"
    token_secret: SecretStr = SecretStr(DEVELOPMENT_SECRET)

    @model_validator(mode="after")
    def _refuse_default_secret_in_production(self) -> CommonSettings:
        secret = self.token_secret.get_secret_value()
        if self.environment == "production" and (not secret or secret == DEVELOPMENT_SECRET):
            raise ValueError("PREPAID_TOKEN_SECRET must be set to a real secret in production")
        return self
