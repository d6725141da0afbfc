"""Link health and poll scheduling for one RS485 bus: pure state, no clocks read here."""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

OFFLINE_AFTER_FAILURES = 3
MAX_BACKOFF_SECONDS = 300.0
# A failed poll is retried this soon (at most), until the meter counts as offline.
RETRY_SOON_SECONDS = 1.0


@dataclass(frozen=True)
class MeterLink:
    """Whether a meter answers, and how many polls in a row it has not."""

    online: bool
    consecutive_failures: int = 0

    def after_success(self) -> tuple[MeterLink, bool]:
        """Return the new state and whether the meter just came online."""
        return ANSWERING, not self.online

    def after_failure(self) -> tuple[MeterLink, bool]:
        """Return the new state and whether the meter just went offline.

        Announced once per outage: when the streak reaches the limit, whether or not the
        meter had ever been online.
        """
        failures = self.consecutive_failures + 1
        offline_now = failures == OFFLINE_AFTER_FAILURES
        online = self.online and failures < OFFLINE_AFTER_FAILURES
        return MeterLink(online=online, consecutive_failures=failures), offline_now

    def after_dtu_lost(self) -> tuple[MeterLink, bool]:
        """Return the state once its DTU is unreachable, and whether that is news."""
        already_announced = self.consecutive_failures >= OFFLINE_AFTER_FAILURES
        failures = max(self.consecutive_failures, OFFLINE_AFTER_FAILURES)
        return MeterLink(online=False, consecutive_failures=failures), not already_announced


# Every meter that just answered is in this one state (immutable, so shared).
ANSWERING = MeterLink(online=True)


def next_poll_delay(poll_interval: float, consecutive_failures: int) -> float:
    """Return the wait before a meter's next poll.

    A meter that just failed is asked again at once (within ``RETRY_SOON_SECONDS``): a
    garbled reply is usually one bad frame, and a healthy meter retried at once stays
    fresh; a silence is confirmed (and the meter announced offline) within seconds of its
    first failed poll. Once it is offline its polls back off, doubling, so it cannot stall
    the bus.
    """
    if consecutive_failures == 0:
        return poll_interval
    if consecutive_failures < OFFLINE_AFTER_FAILURES:
        return min(poll_interval / OFFLINE_AFTER_FAILURES, RETRY_SOON_SECONDS)
    return retry_delay(poll_interval, consecutive_failures - OFFLINE_AFTER_FAILURES + 1)


def retry_delay(poll_interval: float, consecutive_failures: int) -> float:
    """Return the wait before a meter's next poll: doubling while it keeps failing."""
    if consecutive_failures <= 1:
        return poll_interval
    backoff = poll_interval * float(2 ** min(consecutive_failures - 1, 20))
    return min(backoff, max(MAX_BACKOFF_SECONDS, poll_interval))


def reconnect_delay(poll_interval: float, connect_failures: int) -> float:
    """Return the wait before the next attempt to reach a DTU that could not be reached.

    Half a poll interval at most, whatever the outage's length: a connection attempt costs
    little, and a DTU that returns is reached again within half an interval, its meters then
    polled at once (``PollSchedule.pull_in``): each is read again within one poll interval
    of its DTU's return.
    """
    return min(retry_delay(poll_interval, connect_failures), poll_interval / 2)


class PollSchedule:
    """When each meter on one bus is next due; new meters are staggered over one interval.

    A heap of (due, meter) keeps the next poll a pop away; an entry whose time no longer
    matches the meter's is stale and skipped.
    """

    def __init__(self, poll_interval: float) -> None:
        self.poll_interval = poll_interval
        self._due: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []

    def sync(self, meter_ids: Iterable[str], now: float) -> None:
        """Follow the bus's current meter list: schedule new meters, forget removed ones."""
        wanted = list(meter_ids)
        for gone in set(self._due) - set(wanted):
            del self._due[gone]
        new = [meter_id for meter_id in wanted if meter_id not in self._due]
        step = self.poll_interval / max(len(new), 1)
        for index, meter_id in enumerate(new):
            self._set(meter_id, now + index * step)

    def next_due(self, now: float) -> tuple[str | None, float]:
        """Return the meter to poll now, or None and how long until one is due."""
        heap = self._heap
        while heap:
            due, meter_id = heap[0]
            if self._due.get(meter_id) != due:
                heapq.heappop(heap)  # rescheduled or removed since
                continue
            wait = due - now
            return (meter_id, 0.0) if wait <= 0 else (None, wait)
        return None, self.poll_interval

    def due_times(self) -> dict[str, float]:
        """Return when each scheduled meter is next due (a copy)."""
        return dict(self._due)

    def lateness(self, meter_id: str, now: float) -> float:
        """Return how long past its due time a meter's poll starts (0 if on time or unknown)."""
        due = self._due.get(meter_id)
        return 0.0 if due is None else max(0.0, now - due)

    def pull_in(self, now: float) -> list[str]:
        """Make every meter due later than one interval from now due now; return them.

        After the link returns (or answers again after a silence) the meters backed off
        while it was down are asked at once, not when their back-off ends.
        """
        late = sorted(m for m, due in self._due.items() if due > now + self.poll_interval)
        for meter_id in late:
            self._set(meter_id, now)
        return late

    def polled(self, meter_id: str, now: float, consecutive_failures: int) -> None:
        """Schedule a meter's next poll after one ended."""
        if meter_id in self._due:
            self._set(meter_id, now + next_poll_delay(self.poll_interval, consecutive_failures))

    def _set(self, meter_id: str, due: float) -> None:
        self._due[meter_id] = due
        heapq.heappush(self._heap, (due, meter_id))


BusWork = Literal["commands", "on_demand", "poll", "wait"]


def choose_work(*, commands_due: bool, on_demand: bool, poll_due: bool) -> BusWork:
    """Pick what a bus does next: commands, then on-demand reads, then the due poll."""
    if commands_due:
        return "commands"
    if on_demand:
        return "on_demand"
    if poll_due:
        return "poll"
    return "wait"


def link_looks_dead(silent_in_a_row: int, meters_on_bus: int) -> bool:
    """True when no meter on a dialled bus has answered for a whole round: reconnect.

    A half-open TCP connection (a router restarted, a cable pulled upstream) shows only as
    silence. Once every meter has had its turn without a byte in reply, the collector
    reconnects: if that fails the DTU is offline, if it works the RS485 line is what broke.
    """
    return silent_in_a_row >= max(OFFLINE_AFTER_FAILURES, meters_on_bus)
