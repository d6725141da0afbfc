"""Gateway settings (environment, prefix ``PREPAID_``)."""

from __future__ import annotations

from prepaid_common.http_guards import DEFAULT_MAX_BODY_BYTES
from prepaid_common.settings import CommonSettings
from pydantic import Field, SecretStr


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
    # A request body larger than this is refused (413) before it is read.
    http_max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, ge=1024)
    # Origins whose pages may call the API from a browser (JSON list); none by default.
    cors_origins: list[str] = Field(default_factory=list)
    # Strict-Transport-Security max-age; 0 leaves it out (set it only behind TLS).
    hsts_seconds: int = Field(default=0, ge=0)
    # Serve /metrics on the public port; clusters turn this off and scrape metrics_port.
    public_metrics: bool = True
    # A port of its own for /metrics (on listen_host); None: none.
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
