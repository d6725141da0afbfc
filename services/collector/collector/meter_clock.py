"""Meters' clocks as one bus loop keeps them: checked now and then, corrected within what
the protocol allows, read back, reported; and the meter's own time for a command's deadline.

Meters keep local wall-clock time in the site's zone (``PREPAID_COLLECTOR_METER_TIMEZONE``,
default: this host's). Each check reads the clock, remembers the meter's offset from the
site's time, corrects it (``domain.clock`` decides how), reads it again and says what it
found: corrected, or an anomaly (beyond reach, or a correction the meter did not take),
recorded once per episode as an ``anomaly.v1`` of kind ``clock`` (billing lists it under
``GET /api/v1/anomalies``) and counted in ``prepaid_collector_clock_checks_total``.
"""

from __future__ import annotations

import logging
import time
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from prepaid_common.contracts import utcnow
from prepaid_common.outbox import ServiceStore

from collector import meter_io, records
from collector.domain import ImplausibleValue, Profile
from collector.domain.clock import ClockJudgement, meter_time_now
from collector.links import BusLink, MeterRefused, MeterSilent
from collector.metrics import CLOCK_SETS
from collector.records import MeterConfig

log = logging.getLogger(__name__)


@dataclass
class MeterClockState:
    """What the collector knows of one meter's clock."""

    offset: timedelta | None = None  # meter minus the site's time, as last read
    read_at: float = -float("inf")  # monotonic time of that read
    anomaly: str = ""  # the open anomaly episode's detail; "" when the clock is fine
    since: datetime | None = None  # when the episode began (UTC)


class MeterClocks:
    """The clocks of one bus's meters."""

    def __init__(
        self, store: ServiceStore, *, timezone: tzinfo | None, check_interval: float
    ) -> None:
        self._store = store
        self._timezone = timezone
        self._check_interval = check_interval
        self._checked: dict[str, float] = {}
        self.states: dict[str, MeterClockState] = {}

    def site_now(self) -> datetime:
        """The time a meter should show: local wall-clock time of the site, as meters keep it."""
        return datetime.now(self._timezone).replace(tzinfo=None, microsecond=0)

    def state(self, meter_id: str) -> MeterClockState:
        return self.states.setdefault(meter_id, MeterClockState())

    def due(self, meter_id: str) -> bool:
        """True when this meter's clock check is due (first checks spread over an interval)."""
        now = time.monotonic()
        checked = self._checked.get(meter_id)
        if checked is None:
            # A whole bus reading its clocks at start-up would double the first cycle's
            # traffic: first checks are spread over one interval.
            offset = zlib.crc32(meter_id.encode()) / 2**32 * self._check_interval
            checked = self._checked[meter_id] = now - offset
        return now - checked >= self._check_interval

    async def command_time(self, link: BusLink, meter: MeterConfig, profile: Profile) -> datetime:
        """The meter's own time now, for a command's validity deadline.

        A meter judges a deadline by its own clock: one running 6 minutes fast refuses a
        command that expires 5 minutes after the server's time. The offset from the last
        check serves while it is fresh; otherwise the clock is read now. A model without a
        clock, or one that cannot be read, gets the site's time.
        """
        site = self.site_now()
        if not meter_io.has_clock(profile):
            return site
        state = self.state(meter.id)
        if state.offset is None or time.monotonic() - state.read_at > self._check_interval:
            try:
                await self._read(link, meter, profile, site)
            except (MeterSilent, MeterRefused, ImplausibleValue) as error:
                log.warning(
                    "meter clock unreadable before a command; using the last known offset",
                    extra={"meter_id": meter.id, "error": str(error)},
                )
            site = self.site_now()
        return meter_time_now(site, state.offset)

    async def _read(
        self, link: BusLink, meter: MeterConfig, profile: Profile, site: datetime
    ) -> datetime:
        meter_time = await meter_io.read_clock(link, meter, profile)
        state = self.state(meter.id)
        state.offset = meter_time - site
        state.read_at = time.monotonic()
        return meter_time

    async def keep(self, link: BusLink, meter: MeterConfig, profile: Profile) -> None:
        """Check the clock if due: correct it within the protocol's limits, read it back,
        report what stays wrong. LinkDown is the caller's; a meter error waits a check."""
        if not meter_io.has_clock(profile) or not self.due(meter.id):
            return
        self._checked[meter.id] = time.monotonic()
        try:
            await self._check(link, meter, profile)
        except (MeterSilent, MeterRefused, ImplausibleValue) as error:
            # The clock waits for the next check; a reading already counted.
            CLOCK_SETS.labels("unreadable").inc()
            log.warning(
                "meter clock check failed", extra={"meter_id": meter.id, "error": str(error)}
            )

    async def _check(self, link: BusLink, meter: MeterConfig, profile: Profile) -> None:
        site = self.site_now()
        meter_time = await self._read(link, meter, profile, site)
        judgement = meter_io.judge_meter_clock(profile, meter_time, site)
        if judgement.verdict == "in_time":
            CLOCK_SETS.labels("in_time").inc()
            self._fine(meter.id, judgement.drift_seconds)
            return
        if judgement.verdict == "anomaly":
            detail = f"clock off by {judgement.drift_seconds:+.0f} s, {judgement.reason}"
            await self._anomaly(meter.id, judgement, detail)
            return
        broadcast = judgement.verdict == "broadcast"
        how = "broadcast time set" if broadcast else "time set"
        try:
            await meter_io.set_clock(link, meter, profile, self.site_now(), broadcast=broadcast)
        except MeterRefused as error:
            # Never again with the same password until the profile changes (lock-out).
            detail = (
                f"clock off by {judgement.drift_seconds:+.0f} s; the meter refused the {how}: "
                f"{error}"
            )
            await self._anomaly(meter.id, judgement, detail)
            return
        site = self.site_now()
        after = await self._read(link, meter, profile, site)
        left = (after - site).total_seconds()
        tolerance = meter_io.judge_meter_clock(profile, after, site)
        if tolerance.verdict != "in_time":
            await self._anomaly(
                meter.id,
                judgement,
                f"clock off by {judgement.drift_seconds:+.0f} s; after a {how} it is still "
                f"off by {left:+.0f} s (the meter did not take it)",
            )
            return
        CLOCK_SETS.labels("set").inc()
        log.info(
            "meter clock corrected",
            extra={
                "meter_id": meter.id,
                "how": how,
                "drift_seconds": judgement.drift_seconds,
                "left_seconds": left,
            },
        )
        self._fine(meter.id, left)

    def _fine(self, meter_id: str, drift: float) -> None:
        state = self.state(meter_id)
        if state.anomaly:
            log.info(
                "meter clock in time again", extra={"meter_id": meter_id, "drift_seconds": drift}
            )
        state.anomaly, state.since = "", None

    async def _anomaly(self, meter_id: str, judgement: ClockJudgement, detail: str) -> None:
        """Record an anomaly once per episode (a clock that stays wrong is one episode)."""
        state = self.state(meter_id)
        if state.anomaly:
            return
        CLOCK_SETS.labels("anomaly").inc()
        state.anomaly, state.since = detail, utcnow()
        log.warning(
            "meter clock anomaly",
            extra={
                "meter_id": meter_id,
                "drift_seconds": judgement.drift_seconds,
                "detail": detail,
            },
        )
        await records.record_clock_anomaly(
            self._store, meter_id=meter_id, detail=detail[:400], at=state.since
        )
