"""Which reading shards a billing replica takes: from PREPAID_READING_SHARDS,
PREPAID_BILLING_REPLICAS and PREPAID_BILLING_REPLICA, or a StatefulSet host name."""

from __future__ import annotations

import socket

import pytest
from billing.bootstrap import build
from billing.settings import BillingSettings, ordinal_of
from prepaid_common.bus import InProcessBus
from prepaid_common.db import create_engine
from pydantic import ValidationError


@pytest.fixture(autouse=True)
def _no_replica_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PREPAID_READING_SHARDS", "PREPAID_BILLING_REPLICAS", "PREPAID_BILLING_REPLICA"):
        monkeypatch.delenv(name, raising=False)


def test_the_variables_name_the_shards_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREPAID_READING_SHARDS", "8")
    monkeypatch.setenv("PREPAID_BILLING_REPLICAS", "3")
    monkeypatch.setenv("PREPAID_BILLING_REPLICA", "1")
    settings = BillingSettings()
    assert (settings.reading_shards, settings.billing_replicas, settings.billing_replica) == (
        8,
        3,
        1,
    )
    assert settings.reading_shards_owned() == [1, 4, 7]


def test_a_statefulset_ordinal_places_the_replica(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "billing-2")
    monkeypatch.setenv("PREPAID_READING_SHARDS", "4")
    monkeypatch.setenv("PREPAID_BILLING_REPLICAS", "4")
    assert BillingSettings().reading_shards_owned() == [2]
    # The variable wins over the host name.
    monkeypatch.setenv("PREPAID_BILLING_REPLICA", "0")
    assert BillingSettings().reading_shards_owned() == [0]


def test_ordinals() -> None:
    assert ordinal_of("billing-2") == 2
    assert ordinal_of("prepaid-billing-13.billing.default.svc.cluster.local") == 13
    assert ordinal_of("billing") is None
    assert ordinal_of("billing-7f9c-x2") is None


def test_several_replicas_need_to_know_which_they_are(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "billing")
    monkeypatch.setenv("PREPAID_BILLING_REPLICAS", "2")
    with pytest.raises(ValidationError, match="PREPAID_BILLING_REPLICA"):
        BillingSettings()
    monkeypatch.setenv("PREPAID_BILLING_REPLICA", "2")
    with pytest.raises(ValidationError, match="not below"):
        BillingSettings()


def test_one_replica_on_any_host_takes_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "billing-5")
    settings = BillingSettings(reading_shards=3)
    assert (settings.billing_replica, settings.reading_shards_owned()) == (0, [0, 1, 2])


async def test_one_shard_is_the_readings_queue_as_before() -> None:
    engine = create_engine("sqlite+aiosqlite://")
    try:
        service = build(BillingSettings(), engine=engine, bus=InProcessBus())
        [readings] = service.batch_subscriptions()
        assert (readings.queue, list(readings.bindings)) == (
            "readings",
            ["reading.v1.#", "reading.batch.v1.#"],
        )
        assert not readings.single_active_consumer
    finally:
        await engine.dispose()


async def test_each_shard_taken_is_a_queue_of_its_own() -> None:
    engine = create_engine("sqlite+aiosqlite://")
    try:
        settings = BillingSettings(reading_shards=4, billing_replicas=2, billing_replica=1)
        service = build(settings, engine=engine, bus=InProcessBus())
        specs = service.batch_subscriptions()
        assert [(s.queue, list(s.bindings), s.single_active_consumer) for s in specs] == [
            (
                f"readings-shard-{k}",
                [f"reading.v1.shard={k}.#", f"reading.batch.v1.shard={k}.#"],
                True,
            )
            for k in (1, 3)
        ]
    finally:
        await engine.dispose()


async def test_a_replica_beyond_the_shards_takes_no_readings() -> None:
    engine = create_engine("sqlite+aiosqlite://")
    try:
        for shards, replica in ((1, 1), (2, 2)):
            settings = BillingSettings(
                reading_shards=shards, billing_replicas=3, billing_replica=replica
            )
            assert build(settings, engine=engine, bus=InProcessBus()).batch_subscriptions() == ()
        # The prefetch is shared by the queues a replica takes.
        settings = BillingSettings(
            reading_shards=8, billing_replicas=2, billing_replica=0, billing_reading_prefetch=1000
        )
        specs = build(settings, engine=engine, bus=InProcessBus()).batch_subscriptions()
        assert [spec.prefetch for spec in specs] == [250] * 4
    finally:
        await engine.dispose()
