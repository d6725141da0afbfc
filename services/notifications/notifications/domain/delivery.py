"""When a message goes out: quiet hours hold what can wait; failures are retried later and
later (exponential back-off) until the attempts run out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class QuietHours:
    """A daily window, in the site's time zone, that may wrap past midnight."""

    start: time
    end: time
    zone: ZoneInfo

    def contains(self, instant: datetime) -> bool:
        local = instant.astimezone(self.zone).time()
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def release(self, instant: datetime) -> datetime:
        """Return when a message held at ``instant`` may go (``instant`` outside the window)."""
        if not self.contains(instant):
            return instant
        local = instant.astimezone(self.zone)
        end = local.replace(
            hour=self.end.hour, minute=self.end.minute, second=self.end.second, microsecond=0
        )
        if end <= local:
            end += timedelta(days=1)
        return end.astimezone(instant.tzinfo)


def not_before(*, urgent: bool, now: datetime, quiet: QuietHours | None) -> datetime:
    """Return the earliest instant a message may be sent."""
    if urgent or quiet is None:
        return now
    return quiet.release(now)


@dataclass(frozen=True)
class Backoff:
    first_seconds: float
    max_seconds: float
    max_attempts: int

    def delay(self, attempts: int) -> timedelta | None:
        """Return the wait before the next attempt after ``attempts`` failed ones, or None
        when they are used up."""
        if attempts >= self.max_attempts:
            return None
        seconds = min(self.first_seconds * 2 ** (attempts - 1), self.max_seconds)
        return timedelta(seconds=seconds)
