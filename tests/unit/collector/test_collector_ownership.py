"""Rendezvous ownership: stable, balanced, and only a leaver's DTUs move."""

from __future__ import annotations

from collections import Counter

from collector.domain.clock import judge_clock
from collector.domain.link import choose_work
from collector.domain.ownership import owned_by, owner_of
from hypothesis import given
from hypothesis import strategies as st

DTUS = [f"DTU{n:05d}" for n in range(3000)]
names = st.lists(
    st.from_regex(r"[a-z0-9-]{1,12}", fullmatch=True), min_size=1, max_size=8, unique=True
)


def test_no_replica_owns_nothing() -> None:
    assert owner_of("DTU1", []) is None


@given(names)
def test_every_dtu_has_exactly_one_owner_whatever_the_order(replicas: list[str]) -> None:
    shares = [owned_by(r, DTUS[:200], replicas) for r in replicas]
    assert sum(len(s) for s in shares) == 200
    assert set().union(*shares) == set(DTUS[:200])
    assert all(owner_of(d, list(reversed(replicas))) == owner_of(d, replicas) for d in DTUS[:50])


def test_shares_are_balanced() -> None:
    counts = Counter(owner_of(d, ["a", "b", "c"]) for d in DTUS)
    assert all(800 <= n <= 1200 for n in counts.values()), counts


@given(names, st.data())
def test_only_the_leavers_dtus_move(replicas: list[str], data: st.DataObject) -> None:
    leaver = data.draw(st.sampled_from(replicas))
    rest = [r for r in replicas if r != leaver]
    for dtu in DTUS[:200]:
        before = owner_of(dtu, replicas)
        if before != leaver:
            assert owner_of(dtu, rest) == before


def test_bus_priorities() -> None:
    assert choose_work(commands_due=True, on_demand=True, poll_due=True) == "commands"
    assert choose_work(commands_due=False, on_demand=True, poll_due=True) == "on_demand"
    assert choose_work(commands_due=False, on_demand=False, poll_due=True) == "poll"
    assert choose_work(commands_due=False, on_demand=False, poll_due=False) == "wait"


def test_clock_judgement() -> None:
    from datetime import datetime, timedelta

    now = datetime(2026, 11, 27, 12, 0, 0)
    limits = {"tolerance_seconds": 30, "max_set_seconds": 600}
    assert judge_clock(now + timedelta(seconds=20), now, **limits).verdict == "in_time"
    late = judge_clock(now - timedelta(minutes=9), now, **limits)
    assert (late.verdict, late.drift_seconds) == ("set", -540)
    assert judge_clock(now + timedelta(minutes=11), now, **limits).verdict == "anomaly"


def test_a_dialled_link_is_reconnected_after_a_silent_round() -> None:
    from collector.domain.link import link_looks_dead

    assert not link_looks_dead(2, 1)  # one meter: three silent requests first
    assert link_looks_dead(3, 1)
    assert not link_looks_dead(31, 32)  # every meter on the bus gets its turn
    assert link_looks_dead(32, 32)
