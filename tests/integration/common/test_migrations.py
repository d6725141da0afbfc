"""Every service's migrations run on both backends, repeatably, and replicas starting at
the same moment on PostgreSQL do not trip over each other."""

from __future__ import annotations

import asyncio
import sys

from billing.service import BillingService
from collector.service import CollectorService
from control.service import ControlService
from gateway.tables import metadata as gateway_metadata
from payments.service import PaymentsService
from prepaid_common.bus import InProcessBus
from prepaid_common.db import create_engine
from prepaid_common.service import Service
from sqlalchemy import inspect

SERVICES: list[type[Service]] = [BillingService, CollectorService, ControlService, PaymentsService]

MIGRATE_ALL = """
import asyncio, sys
from prepaid_common.bus import InProcessBus
from prepaid_common.db import create_engine
from billing.service import BillingService
from collector.service import CollectorService
from control.service import ControlService
from payments.service import PaymentsService

async def main() -> None:
    engine = create_engine(sys.argv[1])
    for kind in (BillingService, CollectorService, ControlService, PaymentsService):
        await kind(engine=engine, bus=InProcessBus()).migrate()
    await engine.dispose()

asyncio.run(main())
"""


async def tables_of(database_url: str) -> set[str]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            return set(await connection.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


def assert_every_service_migrated(tables: set[str]) -> None:
    for kind in SERVICES:
        name = kind.name
        assert {f"{name}_outbox", f"{name}_inbox", f"{name}_alembic_version"} <= tables
    assert {
        "billing_entries",
        "collector_meters",
        "control_commands",
        "payments_payments",
    } <= tables


async def test_migrations_are_repeatable_in_one_process(backend: tuple[str, str]) -> None:
    database_url, _ = backend
    engine = create_engine(database_url)
    try:
        services = [kind(engine=engine, bus=InProcessBus()) for kind in SERVICES]
        await asyncio.gather(*(s.migrate() for s in services + services))
        await asyncio.gather(*(s.migrate() for s in services))
    finally:
        await engine.dispose()
    assert_every_service_migrated(await tables_of(database_url))
    assert not any(t.startswith("gateway_") for t in await tables_of(database_url)), (
        "no service creates another's tables"
    )
    assert gateway_metadata.tables  # the gateway's own are made by the gateway


async def test_replicas_starting_together_on_postgres_all_succeed(postgres_url: str) -> None:
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            MIGRATE_ALL,
            postgres_url,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(3)
    ]
    results = await asyncio.gather(*(p.communicate() for p in processes))
    for process, (_, stderr) in zip(processes, results, strict=True):
        assert process.returncode == 0, stderr.decode()[-2000:]
    assert_every_service_migrated(await tables_of(postgres_url))
