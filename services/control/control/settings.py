"""The control service's settings, from the environment (``PREPAID_`` prefix)."""

from __future__ import annotations

from pathlib import Path

from prepaid_common.settings import CommonSettings
from pydantic import Field, SecretStr


class ControlSettings(CommonSettings):
    """Cluster-mode settings of one control process."""

    service_port: int = Field(default=8103, ge=1, le=65535)
    # The command master keys (a mounted secret: "<version> <32 hex digits>" a line, the
    # highest version seals). Required in production: commands are never sent unsealed there.
    command_master_key_file: Path | None = None
    # The same keys as one secret environment variable ("1 <hex>;2 <hex>"), for deployments
    # that pass secrets that way; the file wins when both are set.
    command_master_keys: SecretStr | None = None
    # A meter whose relay disagrees with its decided supply: first re-issue, back-off
    # ceiling, operator alarm, and how long an operator's own trip or close is left alone.
    control_relay_first_retry_seconds: float = Field(default=10.0, gt=0)
    control_relay_max_backoff_seconds: float = Field(default=300.0, gt=0)
    control_relay_alarm_seconds: float = Field(default=600.0, gt=0)
    control_operator_grace_seconds: float = Field(default=1800.0, ge=0)
    control_sweep_seconds: float = Field(default=5.0, gt=0)
