"""The collector's settings, from the environment (``PREPAID_`` prefix)."""

from __future__ import annotations

from pathlib import Path

from prepaid_common.settings import CommonSettings
from pydantic import Field


class CollectorSettings(CommonSettings):
    """Cluster-mode settings of one collector process."""

    service_port: int = Field(default=8101, ge=1, le=65535)
    # How often each meter is read; one bus reads one meter at a time.
    poll_interval_seconds: float = Field(default=5.0, gt=0)
    # Per request; field reports need about 0.6 s on RS485 and more over 4G.
    request_timeout_seconds: float = Field(default=1.0, gt=0)
    # A site's own meter profiles (*.toml), next to the shipped ones.
    profiles_dir: Path | None = None
