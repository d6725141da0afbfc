"""Simulated time: wall time sped up by a factor, counted from a local start instant."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta


class SimClock:
    """Map the real monotonic clock to simulated local time running ``speed`` times faster."""

    def __init__(
        self,
        *,
        speed: float = 1.0,
        start: datetime | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be greater than zero")
        # Meters keep local wall-clock time (no zone), as Chinese meters do.
        start = (start or datetime.now()).replace(tzinfo=None, microsecond=0)
        self.speed = speed
        self._monotonic = monotonic
        self._origin = monotonic()
        self.midnight = start.replace(hour=0, minute=0, second=0)
        self._start_of_day = (start - self.midnight).total_seconds()

    def seconds(self) -> float:
        """Return simulated seconds since the local midnight of the start day."""
        return self._start_of_day + (self._monotonic() - self._origin) * self.speed

    def now(self) -> datetime:
        """Return the simulated local time."""
        return self.midnight + timedelta(seconds=self.seconds())
