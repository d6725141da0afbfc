"""Outbound webhooks received at a real HTTP server that checks the signature with the
secret shown once at subscription: per-event subscriptions, retries with back-off, the
delivery log, replay, unsubscribing."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from fastapi import FastAPI, Request, Response
from notifications.domain.signing import webhook_signature_valid
from prepaid_common.contracts import MeterStatusV1, PaymentSucceededV1, RelayRequestedV1
from prepaid_common.contracts.messages import BalanceLowV1
from simulator.payproviders import BackgroundServer

from .conftest import Rig

AT = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)


@dataclass
class Receiver:
    """A third party's endpoint: keeps what arrives; answers from ``statuses`` first."""

    server: BackgroundServer
    received: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    secret: str = ""

    @property
    def url(self) -> str:
        return f"{self.server.url}/hooks/prepaid"

    def verified(self) -> list[dict[str, Any]]:
        """What arrived with a valid signature (checked as a receiver would)."""
        return [r for r in self.received if r["valid"]]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    app = FastAPI()
    server = BackgroundServer()
    hook = Receiver(server)

    @app.post("/hooks/prepaid")
    async def receive(request: Request) -> Response:
        body = await request.body()
        timestamp = int(request.headers["X-Prepaid-Timestamp"])
        hook.received.append(
            {
                "body": json.loads(body),
                "raw": body,
                "event": request.headers["X-Prepaid-Event"],
                "delivery": request.headers["X-Prepaid-Delivery"],
                "valid": webhook_signature_valid(
                    hook.secret,
                    timestamp,
                    body,
                    request.headers["X-Prepaid-Signature"],
                    now=int(time.time()),
                ),
            }
        )
        return Response(status_code=hook.statuses.pop(0) if hook.statuses else 204)

    await server.start(app)
    yield hook
    await server.stop()


async def subscribe(rig: Rig, receiver: Receiver, events: list[str]) -> dict[str, Any]:
    answer = await rig.api.post(
        "/internal/webhook-subscriptions",
        params={"operator": "admin"},
        json={"url": receiver.url, "events": events, "description": "ERP"},
    )
    assert answer.status_code == 201, answer.text
    created = dict(answer.json())
    receiver.secret = created["secret"]
    return created


async def arrived(rig: Rig, receiver: Receiver, count: int) -> list[dict[str, Any]]:
    async def enough() -> bool:
        return len(receiver.received) >= count

    await rig.eventually(enough)
    return receiver.received


async def deliveries(rig: Rig, subscription_id: str) -> list[dict[str, Any]]:
    answer = await rig.api.get(f"/internal/webhook-subscriptions/{subscription_id}/deliveries")
    assert answer.status_code == 200, answer.text
    return list(answer.json()["items"])


def payment(payment_id: str) -> PaymentSucceededV1:
    return PaymentSucceededV1(
        payment_id=payment_id,
        account_id="A1",
        amount=Decimal("50.5"),
        method="alipay",
        reference=payment_id,
        at=AT,
    )


async def test_each_event_type_arrives_signed_to_its_subscribers(
    rig: Rig, receiver: Receiver
) -> None:
    created = await subscribe(
        rig,
        receiver,
        ["payment.received", "supply.cut", "supply.restored", "balance.low", "meter.offline"],
    )
    assert created["secret"].startswith("whsec_")
    listed = (await rig.api.get("/internal/webhook-subscriptions")).json()["items"]
    assert [s["id"] for s in listed] == [created["id"]]
    assert "secret" not in listed[0]  # shown once, never again
    await rig.publish(payment("p1"))
    for action in ("trip", "close"):
        await rig.publish(
            RelayRequestedV1(
                request_id=f"r-{action}",
                meter_id="M1",
                account_id="A1",
                action=action,
                reason="x",
                at=AT,
            )
        )
    await rig.publish(
        BalanceLowV1(account_id="A1", level=1, balance=Decimal("9"), line=Decimal("10"), at=AT)
    )
    await rig.publish(
        MeterStatusV1(meter_id="M1", dtu_id="D1", online=False, at=AT, reason="no answer")
    )
    got = await arrived(rig, receiver, 5)
    assert all(r["valid"] for r in got)
    by_type = {r["event"]: r["body"] for r in got}
    assert set(by_type) == {
        "payment.received",
        "supply.cut",
        "supply.restored",
        "balance.low",
        "meter.offline",
    }
    payment_event = by_type["payment.received"]
    assert payment_event["type"] == "payment.received"
    assert payment_event["data"]["account_id"] == "A1"
    assert payment_event["data"]["amount"] == "50.50"  # money as a decimal string
    assert by_type["balance.low"]["data"]["line"] == "10.00"
    assert by_type["meter.offline"]["data"]["meter_id"] == "M1"
    log = await deliveries(rig, created["id"])
    assert {d["status"] for d in log} == {"delivered"}
    assert {d["response_status"] for d in log} == {204}


async def test_only_the_subscribed_events_arrive(rig: Rig, receiver: Receiver) -> None:
    await subscribe(rig, receiver, ["supply.cut"])
    await rig.publish(payment("p1"))
    await rig.publish(
        RelayRequestedV1(
            request_id="r1", meter_id="M1", account_id="A1", action="trip", reason="x", at=AT
        )
    )
    [only] = await arrived(rig, receiver, 1)
    await rig.service.dispatch_once()
    assert only["event"] == "supply.cut"
    assert len(receiver.received) == 1


async def test_a_failing_receiver_is_retried_with_backoff_and_the_log_says_so(
    rig: Rig, receiver: Receiver
) -> None:
    created = await subscribe(rig, receiver, ["payment.received"])
    receiver.statuses = [500, 503]
    await rig.publish(payment("p1"))
    got = await arrived(rig, receiver, 3)
    assert len({r["body"]["id"] for r in got}) == 1  # the same event each time
    assert len({r["delivery"] for r in got}) == 1

    async def delivered() -> bool:
        return [d["status"] for d in await deliveries(rig, created["id"])] == ["delivered"]

    await rig.eventually(delivered)
    [entry] = await deliveries(rig, created["id"])
    assert entry["attempts"] == 3
    assert entry["response_status"] == 204


async def test_attempts_run_out_then_replay_sends_it_again(rig: Rig, receiver: Receiver) -> None:
    created = await subscribe(rig, receiver, ["payment.received"])
    receiver.statuses = [500] * 4
    await rig.publish(payment("p1"))

    async def failed() -> bool:
        return [d["status"] for d in await deliveries(rig, created["id"])] == ["failed"]

    await rig.eventually(failed)
    [entry] = await deliveries(rig, created["id"])
    assert entry["attempts"] == 4
    assert entry["last_error"].startswith("HTTP 500")
    answer = await rig.api.post(
        f"/internal/webhook-subscriptions/{created['id']}/deliveries/{entry['id']}/replay"
    )
    assert answer.status_code == 200, answer.text
    got = await arrived(rig, receiver, 5)
    assert got[-1]["valid"]
    assert got[-1]["body"]["id"] == got[0]["body"]["id"]

    async def delivered() -> bool:
        return [d["status"] for d in await deliveries(rig, created["id"])] == ["delivered"]

    await rig.eventually(delivered)
    # Replay of an unknown delivery, or under another subscription: 404.
    missing = await rig.api.post(
        f"/internal/webhook-subscriptions/{created['id']}/deliveries/nope/replay"
    )
    assert missing.status_code == 404


async def test_a_deleted_subscription_gets_nothing_more(rig: Rig, receiver: Receiver) -> None:
    created = await subscribe(rig, receiver, ["payment.received"])
    await rig.publish(payment("p1"))
    await arrived(rig, receiver, 1)
    answer = await rig.api.delete(f"/internal/webhook-subscriptions/{created['id']}")
    assert answer.status_code == 204
    assert (
        await rig.api.delete(f"/internal/webhook-subscriptions/{created['id']}")
    ).status_code == 404
    await rig.publish(payment("p2"))
    await rig.service.dispatch_once()
    assert len(receiver.received) == 1
    assert (await rig.api.get("/internal/webhook-subscriptions")).json()["items"] == []


async def test_a_subscription_refuses_what_it_cannot_take(rig: Rig) -> None:
    for body in (
        {"url": "not a url", "events": ["supply.cut"]},
        {"url": "https://erp.example.com/h", "events": []},
        {"url": "https://erp.example.com/h", "events": ["everything"]},
    ):
        answer = await rig.api.post(
            "/internal/webhook-subscriptions", params={"operator": "admin"}, json=body
        )
        assert answer.status_code == 422, body
