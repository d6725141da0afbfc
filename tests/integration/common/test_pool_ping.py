"""Pooled PostgreSQL connections: one the server closed is replaced before use; one in
steady use is not pinged before every transaction (prepaid_common.db)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from prepaid_common import db
from prepaid_common.db import create_engine
from sqlalchemy import text
from sqlalchemy.engine import make_url
from testkit.servers import PG_ADMIN_DSN


async def _terminate(engine_url: str) -> None:
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
            make_url(engine_url).database,
        )
    finally:
        await admin.close()


async def test_a_connection_the_server_closed_is_replaced_before_use(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        await _terminate(postgres_url)  # a restart, or an operator ending the backends
        await asyncio.sleep(0.5)  # the event loop reads the server's close
        async with engine.connect() as connection:
            assert (await connection.execute(text("SELECT 1"))).scalar() == 1
    finally:
        await engine.dispose()


async def test_an_idle_connection_is_pinged_and_a_busy_one_is_not(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_engine(postgres_url)
    pings: list[str] = []
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        raw = await engine.raw_connection()
        adapted = type(raw.dbapi_connection)
        raw.close()
        ping = adapted.ping

        def counted(self: object) -> None:
            pings.append("ping")
            ping(self)

        monkeypatch.setattr(adapted, "ping", counted)
        for _ in range(5):  # steady use: handed out again within the idle limit
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        assert pings == []
        monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)
        await asyncio.sleep(0.01)
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        assert pings == ["ping"]
    finally:
        await engine.dispose()
