"""The control service's settings, from the environment (``PREPAID_`` prefix)."""

from __future__ import annotations

from prepaid_common.settings import CommonSettings
from pydantic import Field


class ControlSettings(CommonSettings):
    """Cluster-mode settings of one control process."""

    service_port: int = Field(default=8103, ge=1, le=65535)
