"""The collector's settings, from the environment (``PREPAID_`` prefix)."""

from __future__ import annotations

from pathlib import Path

from prepaid_common.settings import CommonSettings
from pydantic import Field, SecretStr


class CollectorSettings(CommonSettings):
    """Cluster-mode settings of one collector process."""

    service_port: int = Field(default=8101, ge=1, le=65535)
    # How often each meter is read; one bus reads one meter at a time.
    poll_interval_seconds: float = Field(default=5.0, gt=0)
    # Per request; field reports need about 0.6 s on RS485 and more over 4G.
    request_timeout_seconds: float = Field(default=1.0, gt=0)
    # Quiet time between one request's end and the next on a bus (slow DTUs need some).
    collector_request_gap_seconds: float = Field(default=0.0, ge=0)
    # A site's own meter profiles (*.toml), next to the shipped ones.
    profiles_dir: Path | None = None
    # This replica's name among the collectors sharing the field (default: the host name).
    collector_instance: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    # A replica that has not renewed its lease this long is dead; its DTUs move.
    collector_lease_seconds: float = Field(default=15.0, gt=0)
    # Where DTUs in client mode dial in; 0 picks a free port, None turns the listener off
    # (tests and standalone products that need none).
    collector_listen_host: str = "0.0.0.0"  # DTUs dial in from the field
    collector_listen_port: int | None = Field(default=9502, ge=0, le=65535)
    # How often each meter's clock is checked (meters with a clock only).
    collector_clock_check_seconds: float = Field(default=3600.0, gt=0)
    # The zone meters keep their local clocks in (IANA name); default: this host's.
    collector_meter_timezone: str | None = None
    # The command master keys (a mounted secret: "<version> <32 hex digits>" a line), the
    # same file control seals with. Required in production: the collector verifies every
    # command for a meter that cannot verify it itself, and never opens a plain one there.
    command_master_key_file: Path | None = None
    # The same keys as one secret environment variable ("1 <hex>;2 <hex>"), for deployments
    # that pass secrets that way; the file wins when both are set.
    command_master_keys: SecretStr | None = None
