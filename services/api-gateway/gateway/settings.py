"""Gateway settings (environment, prefix ``PREPAID_``)."""

from __future__ import annotations

from prepaid_common.settings import CommonSettings
from pydantic import SecretStr


class GatewaySettings(CommonSettings):
    http_port: int = 8000
    # Seeded for the user "admin" on first start; generated and printed when unset.
    admin_password: SecretStr | None = None
    token_ttl_minutes: int = 60
    collector_url: str = "http://127.0.0.1:8101"
    billing_url: str = "http://127.0.0.1:8102"
    control_url: str = "http://127.0.0.1:8103"
    payments_url: str = "http://127.0.0.1:8104"
    upstream_timeout_seconds: float = 10.0
