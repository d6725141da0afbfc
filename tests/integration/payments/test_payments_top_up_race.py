"""Identical top-ups racing each other: one payment, and every request answered with it.

On PostgreSQL the racers all find no payment for the receipt and all insert one; all but
one hit the unique key, and must answer the payment the winner took (``replayed``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from payments.bootstrap import build
from payments.service import PaymentsService
from payments.settings import PaymentsSettings
from payments.tables import payments
from prepaid_common.bus import InProcessBus
from prepaid_common.db import create_engine
from sqlalchemy import func, select

RACERS = 8


@pytest.fixture
async def service(backend: tuple[str, str]) -> AsyncIterator[PaymentsService]:
    database_url, _ = backend
    engine = create_engine(database_url)
    built = build(PaymentsSettings(), engine=engine, bus=InProcessBus())
    await built.migrate()
    try:
        yield built
    finally:
        await engine.dispose()


async def test_identical_top_ups_racing_make_one_payment(service: PaymentsService) -> None:
    top_up = {"account_id": "shop:12", "amount": "50.00", "receipt": "R-77", "operator": "ann"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=service.internal_app()), base_url="http://payments"
    ) as client:
        answers = await asyncio.gather(
            *(client.post("/internal/top-ups", json=top_up) for _ in range(RACERS))
        )
    assert [answer.status_code for answer in answers] == [201] * RACERS, [
        answer.text for answer in answers
    ]
    bodies = [answer.json() for answer in answers]
    assert len({body["id"] for body in bodies}) == 1
    assert sorted(body["replayed"] for body in bodies) == [False] + [True] * (RACERS - 1)
    assert {(body["amount"], body["reference"]) for body in bodies} == {("50.00", "R-77")}
    async with service.store.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(payments)) == 1
        outbox = service.tables.outbox
        assert await session.scalar(select(func.count()).select_from(outbox)) == 1


async def test_a_racing_top_up_with_another_amount_is_a_conflict(
    service: PaymentsService,
) -> None:
    first = {"account_id": "A-1", "amount": "50.00", "receipt": "R-78", "operator": "ann"}
    other = {**first, "amount": "60.00"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=service.internal_app()), base_url="http://payments"
    ) as client:
        answers = await asyncio.gather(
            *(client.post("/internal/top-ups", json=body) for body in [first, other] * 4)
        )
    statuses = sorted(answer.status_code for answer in answers)
    # Whichever amount won, the other amount's requests are refused, never a 500.
    assert set(statuses) <= {201, 409}, [answer.text for answer in answers]
    assert statuses.count(201) == 4
    async with service.store.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(payments)) == 1
