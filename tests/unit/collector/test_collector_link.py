"""Meter link health (online/offline announced once per outage) and the poll schedule."""

from __future__ import annotations

from collector.domain import (
    OFFLINE_AFTER_FAILURES,
    MeterLink,
    PollSchedule,
    next_poll_delay,
    retry_delay,
)
from hypothesis import given
from hypothesis import strategies as st


def test_a_meter_goes_offline_once_after_three_failures() -> None:
    link = MeterLink(online=True)
    announcements = []
    for _ in range(6):
        link, went_offline = link.after_failure()
        announcements.append(went_offline)
    assert OFFLINE_AFTER_FAILURES == 3
    assert announcements == [False, False, True, False, False, False]
    assert link == MeterLink(online=False, consecutive_failures=6)


def test_a_meter_never_seen_is_announced_offline_too() -> None:
    link = MeterLink(online=False)
    link, _ = link.after_failure()
    link, _ = link.after_failure()
    link, went_offline = link.after_failure()
    assert went_offline
    assert not link.online


def test_one_success_brings_a_meter_back() -> None:
    link, came_online = MeterLink(online=False, consecutive_failures=9).after_success()
    assert came_online
    assert link == MeterLink(online=True, consecutive_failures=0)
    assert MeterLink(online=True).after_success() == (MeterLink(online=True), False)


def test_losing_the_dtu_announces_only_meters_not_already_offline() -> None:
    online, news = MeterLink(online=True).after_dtu_lost()
    assert news
    assert online == MeterLink(online=False, consecutive_failures=OFFLINE_AFTER_FAILURES)
    _, news_again = online.after_dtu_lost()
    assert not news_again
    already, news = MeterLink(online=False, consecutive_failures=5).after_dtu_lost()
    assert not news
    assert already.consecutive_failures == 5
    # After the DTU comes back, a meter that still fails is not announced a second time.
    _, went_offline = online.after_failure()
    assert not went_offline


def test_failing_meters_back_off_up_to_a_ceiling() -> None:
    assert [retry_delay(5.0, n) for n in range(6)] == [5.0, 5.0, 10.0, 20.0, 40.0, 80.0]
    assert retry_delay(5.0, 50) == 300.0
    assert retry_delay(600.0, 3) == 600.0


def test_schedule_staggers_new_meters_and_polls_the_most_overdue_first() -> None:
    schedule = PollSchedule(poll_interval=4.0)
    schedule.sync(["a", "b", "c", "d"], now=100.0)
    assert schedule.next_due(100.0) == ("a", 0.0)
    schedule.polled("a", 100.0, 0)
    assert schedule.next_due(100.0) == (None, 1.0)
    assert schedule.next_due(103.5) == ("b", 0.0)
    schedule.polled("b", 103.5, 0)
    assert schedule.next_due(103.5) == ("c", 0.0)


def test_schedule_backs_off_a_failing_meter_and_forgets_removed_ones() -> None:
    schedule = PollSchedule(poll_interval=1.0)
    schedule.sync(["good", "bad"], now=0.0)
    schedule.polled("bad", 0.0, 6)  # offline, backed off 8 s
    schedule.polled("good", 0.0, 0)
    assert schedule.next_due(1.0) == ("good", 0.0)
    schedule.polled("good", 1.0, 0)
    assert schedule.next_due(2.0) == ("good", 0.0)
    schedule.sync(["bad"], now=2.0)
    assert schedule.next_due(2.0) == (None, 6.0)
    schedule.sync([], now=2.0)
    assert schedule.next_due(2.0) == (None, 1.0)


def test_schedule_says_how_late_a_poll_starts() -> None:
    schedule = PollSchedule(10.0)
    schedule.sync(["a"], now=100.0)
    assert schedule.lateness("a", 99.0) == 0.0
    assert schedule.lateness("a", 104.5) == 4.5
    assert schedule.lateness("unknown", 200.0) == 0.0


@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(["sync", "polled", "ask"]),
            st.sets(st.sampled_from(["m1", "m2", "m3", "m4", "m5"]), min_size=1),
            st.floats(0, 5),
            st.integers(0, 4),
        ),
        max_size=40,
    )
)
def test_the_next_due_meter_is_always_the_earliest_one(
    steps: list[tuple[str, set[str], float, int]],
) -> None:
    """Whatever was synced and polled, next_due answers what a scan of all meters would."""
    schedule = PollSchedule(10.0)
    now = 0.0
    for action, meters, advance, failures in steps:
        now += advance
        if action == "sync":
            schedule.sync(sorted(meters), now)
        elif action == "polled":
            for meter in sorted(meters):
                schedule.polled(meter, now, failures)
        due = schedule.due_times()
        meter, wait = schedule.next_due(now)
        if not due:
            assert (meter, wait) == (None, 10.0)
            continue
        first = min(due, key=lambda m: (due[m], m))
        if due[first] <= now:
            assert (meter, wait) == (first, 0.0)
        else:
            assert meter is None
            assert wait == due[first] - now


def test_a_failing_meter_is_confirmed_silent_within_one_interval_then_backed_off() -> None:
    delays = [next_poll_delay(30.0, n) for n in range(OFFLINE_AFTER_FAILURES + 4)]
    # Healthy: once per interval. Failing: retried at once (a garbled frame is momentary).
    assert delays[0] == 30.0
    assert delays[1:OFFLINE_AFTER_FAILURES] == [1.0] * (OFFLINE_AFTER_FAILURES - 1)
    assert next_poll_delay(0.9, 1) == 0.3  # a short interval: its third
    # Offline: an interval, then doubling, never beyond the cap.
    assert delays[OFFLINE_AFTER_FAILURES:] == [30.0, 60.0, 120.0, 240.0]
    assert next_poll_delay(30.0, 50) == 300.0
