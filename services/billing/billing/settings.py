"""Billing's settings: the common ones plus billing's own (``PREPAID_BILLING_*``)."""

from __future__ import annotations

import re
import socket
from decimal import Decimal

from prepaid_common.contracts.sharding import owned_shards
from prepaid_common.settings import CommonSettings
from pydantic import Field, model_validator

from billing.domain.rating import DEFAULT_MAX_POWER_KW

# A StatefulSet names its pods <name>-<ordinal>: billing-0, billing-1, ...
_ORDINAL = re.compile(r"-(\d+)$")


def ordinal_of(hostname: str) -> int | None:
    """Return the ordinal a StatefulSet pod's host name ends in (``billing-2``: 2)."""
    match = _ORDINAL.search(hostname.split(".", 1)[0])
    return int(match.group(1)) if match else None


class BillingSettings(CommonSettings):
    """How billing batches readings, caches reference data and keeps raw readings.

    Fields read the environment with the prefix ``PREPAID_``: ``billing_reading_prefetch``
    is ``PREPAID_BILLING_READING_PREFETCH``.
    """

    # The internal API's port when billing runs alone.
    service_port: int = Field(default=8102, ge=1, le=65535)
    # The site's name at the head of receipts (PREPAID_SITE_NAME); empty: none printed.
    site_name: str = Field(default="", max_length=100)
    # Raw readings older than this are dropped (whole monthly partitions on PostgreSQL);
    # the daily roll-ups (billing_daily_usage) are kept.
    billing_reading_retention_days: int = Field(default=400, ge=1)
    # Readings rated and committed in one transaction, and how long to wait to fill one.
    billing_reading_batch_max: int = Field(default=1000, ge=1)
    billing_reading_batch_wait_seconds: float = Field(default=0.05, ge=0)
    # Reading messages RabbitMQ may hand over unacknowledged. A collector's batch carries
    # up to 250 readings (about 60 KB), so 1,000 bounds a backlog's share in memory near
    # 60 MB (three batches' worth of messages, 3,000, could reach 180 MB); single reading.v1
    # messages still fill whole batches (300 measured 3,000 readings/s for them, 1,000
    # 6,700/s, three batches' worth 8,800/s).
    billing_reading_prefetch: int = Field(default=1000, ge=1)
    # Meters whose parsed rating position is kept between batches (0: none); each entry
    # is used only while the stored position is still exactly the text it was kept with.
    billing_position_cache_size: int = Field(default=200_000, ge=0)
    # Tariff versions and the site policy are cached; this process drops its cache when it
    # changes them itself, and other replicas see a change within this many seconds.
    billing_reference_cache_seconds: float = Field(default=5.0, ge=0)
    # A local-prepaid meter may show this much more credit (yuan) than the ledger's pushes
    # allow before it is a mismatch: its display truncates credit and energy to 0.01.
    billing_local_credit_tolerance: Decimal = Field(default=Decimal("0.10"), ge=0)
    # Above this average power between two readings a register jump is refused as
    # implausible (a bad frame or the wrong meter answering). A simulator running its
    # clock N times faster needs N times this.
    billing_max_power_kw: Decimal = Field(default=DEFAULT_MAX_POWER_KW, gt=0)
    # Seconds between calendar sweeps (fixed charges, debt recovery, holds and windows).
    billing_sweep_interval_seconds: float = Field(default=30.0, gt=0)
    # Billing replicas sharing the reading shards (PREPAID_READING_SHARDS), and which one
    # this is: it takes the shards k with k % replicas == replica. The replica defaults to
    # the ordinal of a StatefulSet host name (billing-2: 2); PREPAID_BILLING_REPLICA wins.
    billing_replicas: int = Field(default=1, ge=1, le=1024)
    billing_replica: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _place_replica(self) -> BillingSettings:
        if self.billing_replica is None:
            ordinal = ordinal_of(socket.gethostname()) if self.billing_replicas > 1 else None
            if self.billing_replicas > 1 and ordinal is None:
                raise ValueError(
                    "PREPAID_BILLING_REPLICAS is above 1: set PREPAID_BILLING_REPLICA, or run "
                    "billing as a StatefulSet whose host names end in the ordinal (billing-2)"
                )
            self.billing_replica = ordinal or 0
        if self.billing_replica >= self.billing_replicas:
            raise ValueError(
                f"PREPAID_BILLING_REPLICA {self.billing_replica} is not below "
                f"PREPAID_BILLING_REPLICAS {self.billing_replicas}"
            )
        return self

    def reading_shards_owned(self) -> list[int]:
        """Return the reading shards this replica takes."""
        return owned_shards(self.reading_shards, self.billing_replicas, self.billing_replica or 0)
