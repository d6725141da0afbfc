"""The dead-letter queue is visible and recoverable: counted, listed, replayed, discarded.

A message failing on its own content is dead-lettered after bounded attempts; an admin
lists it through the gateway, replays it once the fault is fixed (its consumer applies it)
or discards it, each action in the audit log; the command line does the same.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aio_pika
import httpx
import pytest
from gateway.bootstrap import build
from gateway.service import GatewayService
from gateway.settings import GatewaySettings
from gateway.upstream import Upstreams
from prepaid_common.bus.rabbit import RabbitBus
from prepaid_common.bus.retrying import RetryPolicy
from prepaid_common.contracts import Envelope
from prepaid_common.db import create_engine
from prometheus_client import REGISTRY
from pydantic import SecretStr
from testkit import wait_until
from testkit.bus import payment

ADMIN_PASSWORD = "dead-letter-admin-password"
ROOT = Path(__file__).resolve().parents[3]


class Consumer:
    """A consumer that fails on the payments named in ``broken`` (a bug, later fixed)."""

    def __init__(self) -> None:
        self.broken: set[str] = set()
        self.applied: list[str] = []

    async def handle(self, envelope: Envelope) -> None:
        payment_id = envelope.payload["payment_id"]
        if payment_id in self.broken:
            raise RuntimeError(f"cannot apply {payment_id}")
        if payment_id not in self.applied:  # the inbox's part: once per message
            self.applied.append(payment_id)


@pytest.fixture
async def rabbit(amqp_url: str, bus_prefix: str) -> AsyncIterator[RabbitBus]:
    bus = RabbitBus(amqp_url, prefix=bus_prefix, retry=RetryPolicy(poison_delays=(0.01, 0.02)))
    yield bus
    await bus.close()
    await bus.delete_topology()


def no_upstreams() -> Upstreams:
    def client(name: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.MockTransport(lambda _request: httpx.Response(404)),
            base_url=f"http://{name}.local",
        )

    return Upstreams(
        collector=client("collector"),
        billing=client("billing"),
        control=client("control"),
        payments=client("payments"),
    )


@pytest.fixture
async def gateway(rabbit: RabbitBus, sqlite_url: str) -> AsyncIterator[GatewayService]:
    engine = create_engine(sqlite_url)
    settings = GatewaySettings(
        token_secret=SecretStr("dead-letter-secret-0123456789-0123456789"),
        admin_password=SecretStr(ADMIN_PASSWORD),
    )
    service = build(settings, engine=engine, bus=rabbit, upstreams=no_upstreams())
    await service.migrate()
    await service.ensure_admin()
    try:
        yield service
    finally:
        await service.upstreams.aclose()
        await engine.dispose()


async def sign_in(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD}
    )
    assert response.status_code == 200, response.text
    client.headers["Authorization"] = f"Bearer {response.json()['access_token']}"


async def dead_letter_count(bus: RabbitBus, amqp_url: str) -> int:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(bus.dead_letter_queue, passive=True)
        return queue.declaration_result.message_count or 0


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_an_admin_lists_replays_and_discards_dead_letters_each_audited(
    rabbit: RabbitBus, gateway: GatewayService, amqp_url: str
) -> None:
    consumer = Consumer()
    consumer.broken = {"p2", "p4"}
    rabbit.subscribe("credits", ["payment.succeeded.v1.#"], consumer.handle)
    dead_before = metric("prepaid_bus_dead_lettered_total", queue="credits", reason="failed")
    await rabbit.start()
    sent = {n: Envelope.wrap(payment(n), producer="payments") for n in (1, 2, 3, 4)}
    for envelope in sent.values():
        await rabbit.publish(envelope)

    async def two_dead() -> bool:
        return await dead_letter_count(rabbit, amqp_url) == 2

    await wait_until(two_dead, timeout=20)
    assert consumer.applied == ["p1", "p3"]
    assert (
        metric("prepaid_bus_dead_lettered_total", queue="credits", reason="failed")
        == dead_before + 2
    )

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=gateway.public_app()), base_url="http://test"
    ) as client:
        assert (await client.get("/api/v1/admin/dead-letters")).status_code == 401
        await sign_in(client)

        listed = await client.get("/api/v1/admin/dead-letters")
        assert listed.status_code == 200, listed.text
        page = listed.json()
        assert page["total"] == 2
        assert [item["message_id"] for item in page["items"]] == [
            sent[2].message_id,
            sent[4].message_id,
        ]
        first = page["items"][0]
        assert first["routing_key"] == sent[2].routing_key
        assert first["queue"] == rabbit.queue_name("credits")
        assert first["reason"] == "rejected"
        assert first["payload"]["payload"]["payment_id"] == "p2"
        assert metric("prepaid_dead_letter_queue_messages", queue=rabbit.dead_letter_queue) == 2
        # Listing takes nothing away.
        assert await dead_letter_count(rabbit, amqp_url) == 2

        consumer.broken = set()  # the bug is fixed
        replayed = await client.post(f"/api/v1/admin/dead-letters/{sent[2].message_id}/replay")
        assert replayed.status_code == 200, replayed.text

        async def p2_applied() -> bool:
            return "p2" in consumer.applied

        await wait_until(p2_applied)
        discarded = await client.delete(f"/api/v1/admin/dead-letters/{sent[4].message_id}")
        assert discarded.status_code == 200, discarded.text
        assert await dead_letter_count(rabbit, amqp_url) == 0
        missing = await client.delete(f"/api/v1/admin/dead-letters/{sent[4].message_id}")
        assert missing.status_code == 404

        audit = (await client.get("/api/v1/audit")).json()["items"]
        actions = [(entry["action"], entry["target"]) for entry in audit]
        assert ("dead_letter.replay", sent[2].message_id) in actions
        assert ("dead_letter.discard", sent[4].message_id) in actions
    assert consumer.applied == ["p1", "p3", "p2"]


async def test_the_command_line_lists_and_replays(
    rabbit: RabbitBus, amqp_url: str, bus_prefix: str
) -> None:
    consumer = Consumer()
    consumer.broken = {"p7"}
    rabbit.subscribe("credits", ["payment.succeeded.v1.#"], consumer.handle)
    await rabbit.start()
    poison = Envelope.wrap(payment(7), producer="payments")
    await rabbit.publish(poison)

    async def dead() -> bool:
        return await dead_letter_count(rabbit, amqp_url) == 1

    await wait_until(dead, timeout=20)

    async def run(*arguments: str) -> list[dict[str, object]]:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "prepaid_common.dead_letters",
            *arguments,
            env={
                **os.environ,
                "PYTHONPATH": str(ROOT / "libs"),
                "PREPAID_AMQP_URL": amqp_url,
                "PREPAID_BUS_PREFIX": bus_prefix,
            },
            stdout=asyncio.subprocess.PIPE,
        )
        output, _ = await process.communicate()
        assert process.returncode == 0, output
        return [json.loads(line) for line in output.decode().splitlines()]

    listed = await run("list")
    assert listed[0] == {"total": 1}
    assert listed[1]["message_id"] == poison.message_id

    consumer.broken = set()
    assert await run("replay", "--all") == [{"message_id": poison.message_id, "replay": "done"}]

    async def applied() -> bool:
        return consumer.applied == ["p7"]

    await wait_until(applied)
    assert await dead_letter_count(rabbit, amqp_url) == 0
