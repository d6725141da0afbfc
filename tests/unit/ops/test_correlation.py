"""A request's correlation id follows it: HTTP in, calls to the services, messages on the bus,
the consumers' work, and every log line on the way."""

from __future__ import annotations

import json
import logging

import httpx
from fastapi import FastAPI
from payments.service import PaymentsService
from prepaid_common import correlation
from prepaid_common.bus import InProcessBus
from prepaid_common.contracts import Envelope
from prepaid_common.db import create_engine
from prepaid_common.logs import JsonFormatter
from testkit.bus import payment


def app_that_logs(seen: list[str | None]) -> FastAPI:
    app = FastAPI()
    app.add_middleware(correlation.CorrelateRequests)

    @app.get("/work")
    async def work() -> dict[str, str]:
        seen.append(correlation.current_id())
        return {}

    return app


async def test_a_request_keeps_its_id_or_gets_one_and_is_answered_with_it() -> None:
    seen: list[str | None] = []
    transport = httpx.ASGITransport(app=app_that_logs(seen))
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        kept = await client.get("/work", headers={"X-Request-ID": "req-42"})
        made = await client.get("/work")
        refused = await client.get("/work", headers={"X-Request-ID": "bad id\twith spaces"})
    assert kept.headers["X-Request-ID"] == "req-42"
    assert seen[0] == "req-42"
    assert made.headers["X-Request-ID"] == seen[1]
    assert seen[1]
    assert refused.headers["X-Request-ID"] == seen[2] != "bad id\twith spaces"
    assert correlation.current_id() is None


async def test_the_gateways_calls_carry_the_id() -> None:
    headers: list[str | None] = []

    def upstream(request: httpx.Request) -> httpx.Response:
        headers.append(request.headers.get("X-Request-ID"))
        return httpx.Response(200)

    client = httpx.AsyncClient(
        transport=httpx.MockTransport(upstream),
        base_url="http://billing",
        event_hooks={"request": [correlation.send_correlation_id]},
    )
    async with client:
        with correlation.correlated("req-7"):
            await client.get("/x")
        await client.get("/y")
    assert headers == ["req-7", None]


async def test_messages_carry_the_id_to_their_consumers(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    bus = InProcessBus()
    service = PaymentsService(engine=engine, bus=bus)
    await service.migrate()
    handled: list[str | None] = []

    async def consumer(envelope: Envelope) -> None:
        handled.append(correlation.current_id())

    bus.subscribe(
        "test.payments", ["payment.succeeded.v1.#"], correlation.correlate_handler(consumer)
    )
    await bus.start()
    try:
        with correlation.correlated("req-9"):
            async with service.store.unit_of_work() as uow:
                emitted = await uow.emit(payment(1))
        assert emitted.correlation_id == "req-9"
        await service.relay.relay_once()
        assert handled == ["req-9"]
    finally:
        await bus.close()
        await engine.dispose()


def test_an_envelope_from_before_correlation_ids_still_opens() -> None:
    raw = b'{"message_id": "m1", "type": "t", "routing_key": "t", "producer": "p", "payload": {}}'
    assert Envelope.from_bytes(raw).correlation_id is None


def test_every_log_line_carries_the_bound_id() -> None:
    record = logging.makeLogRecord({"msg": "charged", "levelname": "INFO", "name": "billing"})
    with correlation.correlated("req-5"):
        correlation.CorrelationFilter().filter(record)
    assert json.loads(JsonFormatter().format(record))["correlation_id"] == "req-5"
