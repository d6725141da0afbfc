"""The metrics operations rely on say what is true: the outbox backlog is not capped by the
relay's batch, counters exist at 0 before their first event, every service's internal API
records HTTP metrics, readiness reports its dependencies, billing's site gauges."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime

import httpx
import pytest
from billing.metrics import age_class
from billing.service import BillingService
from billing.store import site_state
from collector import metrics as collector_metrics
from control import metrics as control_metrics
from payments import metrics as payments_metrics
from payments.service import PaymentsService
from prepaid_common.bus import InProcessBus, PublishFailed
from prepaid_common.contracts import Envelope
from prepaid_common.db import create_engine
from prepaid_common.service import watch_event_loop
from prometheus_client import REGISTRY
from testkit.bus import payment


def sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


class BrokerDown(InProcessBus):
    """The in-process bus with the broker unreachable."""

    async def publish_many(self, envelopes: Sequence[Envelope]) -> None:
        raise PublishFailed(0, ConnectionError("broker unreachable"))


async def test_outbox_backlog_counts_past_the_relay_batch(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    service = PaymentsService(engine=engine, bus=BrokerDown())
    await service.migrate()
    try:
        async with service.store.unit_of_work() as uow:
            for n in range(520):  # the relay reads 500 at a time
                await uow.emit(payment(n))
        with contextlib.suppress(ConnectionError):
            await service.relay.relay_once()
        assert sample("prepaid_outbox_backlog", service="payments") == 520
    finally:
        await engine.dispose()


def test_labelled_counters_exist_at_zero_before_their_first_event() -> None:
    assert collector_metrics.COMMANDS_REFUSED is not None
    assert payments_metrics.NOTIFICATIONS is not None
    assert control_metrics.COMMAND_SECONDS is not None
    assert sample("prepaid_collector_commands_refused_total", kind="forged") is not None
    assert sample("prepaid_collector_reads_total", result="link_down") is not None
    refused = sample("prepaid_payments_notifications_total", provider="alipay", outcome="refused")
    assert refused is not None
    assert sample("prepaid_billing_meters_by_reading_age", age="never") is not None
    assert sample("prepaid_control_relay_reissues_total", action="trip") is not None
    assert sample("prepaid_control_command_seconds_count", action="credit") is not None


def test_build_information_is_exported() -> None:
    infos = [s for m in REGISTRY.collect() if m.name == "prepaid_build_info" for s in m.samples]
    assert infos
    assert all(s.value == 1 for s in infos)
    assert {"version", "revision"} <= set(infos[0].labels)


async def test_every_internal_api_records_http_metrics_and_readiness(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    service = PaymentsService(engine=engine, bus=InProcessBus())
    await service.migrate()
    try:
        app = service.internal_app()
        labels = {"app": "payments", "method": "GET", "route": "/readyz", "status": "200"}
        before = sample("prepaid_http_request_seconds_count", **labels) or 0
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            assert (await client.get("/readyz")).status_code == 200
        assert sample("prepaid_http_request_seconds_count", **labels) == before + 1
        assert sample("prepaid_dependency_up", dependency="database") == 1
        assert sample("prepaid_dependency_up", dependency="broker") == 1
    finally:
        await engine.dispose()


def test_reading_ages_fall_into_bounded_classes() -> None:
    assert age_class(0) == "under_5m"
    assert age_class(299.9) == "under_5m"
    assert age_class(300) == "5m_to_1h"
    assert age_class(3600) == "1h_to_1d"
    assert age_class(86400 * 30) == "over_1d"


async def test_billing_site_gauges_on_an_empty_site(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    service = BillingService(engine=engine, bus=InProcessBus())
    await service.migrate()
    try:
        async with service.store.sessionmaker() as session:
            await site_state.measure(session, now=datetime(2026, 1, 1, tzinfo=UTC))
        assert sample("prepaid_billing_accounts_tripped") == 0
        assert sample("prepaid_billing_accounts_below_warning") == 0
        for age in ("under_5m", "5m_to_1h", "1h_to_1d", "over_1d", "never"):
            assert sample("prepaid_billing_meters_by_reading_age", age=age) == 0
    finally:
        await engine.dispose()


async def test_liveness_fails_once_a_background_loop_died(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    service = PaymentsService(engine=engine, bus=InProcessBus())
    await service.migrate()
    transport = httpx.ASGITransport(app=service.internal_app())
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            assert (await client.get("/healthz")).status_code == 200

            async def crashes() -> None:
                raise RuntimeError("a sweep that died")

            died = asyncio.create_task(crashes(), name="payments-reconcile")
            with contextlib.suppress(RuntimeError):
                await died
            service._loops.append(died)
            answer = await client.get("/healthz")
            assert answer.status_code == 503
            assert "payments-reconcile" in answer.json()["detail"]
            service._loops.clear()
    finally:
        await engine.dispose()


async def test_event_loop_lag_is_measured() -> None:
    before = sample("prepaid_event_loop_lag_seconds_count") or 0
    watch = asyncio.create_task(watch_event_loop(every=0.01))
    await asyncio.sleep(0.1)
    watch.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watch
    assert (sample("prepaid_event_loop_lag_seconds_count") or 0) > before


def test_every_exported_family_passes_promtool_check_metrics() -> None:
    # Every metrics module is loaded (the services' and the libraries'), then the whole
    # exposition goes through promtool's linter: names, units, _total on counters, help text.
    import importlib
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from prometheus_client import generate_latest

    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    root = Path(__file__).resolve().parents[3]
    paths = [*root.glob("services/*/*/metrics.py"), *root.glob("libs/*/metrics.py")]
    paths += list(root.glob("libs/*/bus/metrics.py"))
    for path in paths:
        package = path.parent
        top = package if package.name != "bus" else package.parent
        if str(top.parent) not in sys.path:
            sys.path.append(str(top.parent))
        module = ".".join(path.relative_to(top.parent).with_suffix("").parts)
        importlib.import_module(module)
    exposition = generate_latest(REGISTRY)
    assert b"prepaid_billing_money_in_yuan_total" in exposition
    result = subprocess.run(
        [promtool, "check", "metrics"], input=exposition, capture_output=True, timeout=60
    )
    assert result.returncode == 0, (result.stdout + result.stderr).decode()
