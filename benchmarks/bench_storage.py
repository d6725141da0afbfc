"""What billing writes to PostgreSQL per reading: bytes on disk by table, and WAL.

For docs/scaling.md: the database's write volume and storage per day at city scale are
projected from these per-reading figures. Bytes, not time, so the machine's load does not
change them.

One run: a fresh database ``bench_storage_<id>`` migrated by billing itself; N prepaid
accounts seeded through billing's operations (the same tariff, credit and meters as
``bench_billing.py``: 0.8 per kWh, a meter read every 3 minutes at 1 kW, so every reading
charges 4 fen: the worst case, a consumption transaction per reading); a warm-up round (it
only fixes each meter's starting register); then R rounds of every meter fed to billing's
own batch handler (``handle_readings`` behind the inbox, in process, batches of 1,000
readings made of ``reading.batch.v1`` messages of 250, as RabbitMQ would hand them over).
Before and after the R rounds, after a ``VACUUM`` each time: rows and bytes
(``pg_total_relation_size``: heap, indexes, TOAST; a partitioned table summed over its
partitions) of every billing table, and the WAL position. Dead tuples of the rows billing
updates in place (positions, balances, daily usage) are reclaimed by the VACUUM, so the
growth is what stays; the WAL is everything written (what a replica and a backup carry).

``.venv/bin/python benchmarks/bench_storage.py [--meters 2000 --rounds 10]``; writes
``bench-results/storage.json`` and drops its database.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from bench_billing import INTERVAL, PG_ADMIN_DSN, prepare, readings, seed_role
from benchkit import machine, write_results

ROOT = Path(__file__).resolve().parent.parent
MESSAGE_READINGS = 250  # a collector's reading.batch.v1 at most
HANDLER_READINGS = 1000  # PREPAID_BILLING_READING_BATCH_MAX

SIZES = """
SELECT c.relname AS name,
       CASE WHEN c.relkind = 'p'
            THEN coalesce((SELECT sum(pg_total_relation_size(t.relid))
                           FROM pg_partition_tree(c.oid::regclass) t), 0)
            ELSE pg_total_relation_size(c.oid) END AS bytes
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relname LIKE 'billing\\_%'
  AND c.relkind IN ('r', 'p') AND NOT c.relispartition
"""


async def snapshot(dsn: str) -> dict[str, Any]:
    """Rows and bytes of every billing table, and the WAL position, after a VACUUM."""
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("VACUUM")
        tables = {}
        for row in await connection.fetch(SIZES):
            rows = await connection.fetchval(f'SELECT count(*) FROM "{row["name"]}"')
            tables[row["name"]] = {"rows": int(rows), "bytes": int(row["bytes"])}
        return {"tables": tables}
    finally:
        await connection.close()


async def wal_position(dsn: str) -> str:
    connection = await asyncpg.connect(dsn)
    try:
        return str(await connection.fetchval("SELECT pg_current_wal_insert_lsn()::text"))
    finally:
        await connection.close()


async def wal_bytes(dsn: str, start: str, end: str) -> dict[str, int | None]:
    """WAL between two positions: the whole cluster's, and the records of this database.

    The cluster's figure counts whatever else ran on the server meanwhile; the database's is
    summed from ``pg_waldump`` (records with a block of one of its relations, full-page
    images included; commit records carry no relation and are left out) where the tool and
    the WAL directory are readable, else None.
    """
    connection = await asyncpg.connect(dsn)
    try:
        cluster = int(
            await connection.fetchval(
                "SELECT pg_wal_lsn_diff($1::text::pg_lsn, $2::text::pg_lsn)::bigint", end, start
            )
        )
        oid = int(
            await connection.fetchval(
                "SELECT oid FROM pg_database WHERE datname = current_database()"
            )
        )
        data = str(await connection.fetchval("SHOW data_directory"))
        version = int(await connection.fetchval("SHOW server_version_num")) // 10000
    finally:
        await connection.close()
    tool = shutil.which("pg_waldump") or f"/usr/lib/postgresql/{version}/bin/pg_waldump"
    own: int | None = None
    if os.access(tool, os.X_OK) and os.access(Path(data) / "pg_wal", os.R_OK):
        done = await asyncio.to_thread(
            subprocess.run,
            [tool, "-p", str(Path(data) / "pg_wal"), "-s", start, "-e", end],
            capture_output=True,
            text=True,
            check=False,
        )
        mark = re.compile(rf"rel \d+/{oid}/")
        length = re.compile(r"len \(rec/tot\):\s*\d+/\s*(\d+)")
        own = 0
        for line in done.stdout.splitlines():
            if mark.search(line) and (found := length.search(line)):
                own += int(found.group(1))
    return {"cluster": cluster, "this_database": own}


async def feed(database_url: str, base: datetime, meters: int, rounds: range) -> float:
    """Hand the rounds' readings to billing's batch handler as RabbitMQ would; seconds."""
    from billing.bootstrap import build
    from billing.settings import BillingSettings
    from prepaid_common.bus import InProcessBus
    from prepaid_common.contracts import Envelope, ReadingBatchV1
    from prepaid_common.db import create_engine

    engine = create_engine(database_url)
    service = build(BillingSettings(), engine=engine, bus=InProcessBus())
    consume = service.store.idempotent_batch(service.handlers.handle_readings)
    began = time.monotonic()
    try:
        for round_ in rounds:
            batch = readings(base, meters, range(round_, round_ + 1))
            envelopes = [
                Envelope.wrap(
                    ReadingBatchV1(source="bench", readings=batch[i : i + MESSAGE_READINGS]),
                    producer="bench",
                )
                for i in range(0, len(batch), MESSAGE_READINGS)
            ]
            per_call = HANDLER_READINGS // MESSAGE_READINGS
            for i in range(0, len(envelopes), per_call):
                await consume(envelopes[i : i + per_call])
    finally:
        await engine.dispose()
    return time.monotonic() - began


async def outbox_rows(dsn: str) -> int:
    connection = await asyncpg.connect(dsn)
    try:
        return int(await connection.fetchval("SELECT count(*) FROM billing_outbox"))
    finally:
        await connection.close()


async def orchestrate(args: argparse.Namespace) -> dict[str, Any]:
    run = uuid.uuid4().hex[:10]
    database = f"bench_storage_{run}"
    dsn = PG_ADMIN_DSN.rsplit("/", 1)[0] + f"/{database}"
    database_url = dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{database}"')
    await admin.close()
    results: dict[str, Any] = {"meters": args.meters, "rounds": args.rounds, "machine": machine()}
    try:
        await prepare(database_url)
        await seed_role(argparse.Namespace(database_url=database_url, first=0, count=args.meters))
        base = datetime.now(UTC).replace(microsecond=0) - (args.rounds + 1) * INTERVAL
        await feed(database_url, base, args.meters, range(0, 1))  # warm-up: first registers
        before = await snapshot(dsn)
        wal_start = await wal_position(dsn)
        seconds = await feed(database_url, base, args.meters, range(1, args.rounds + 1))
        wal_end = await wal_position(dsn)
        after = await snapshot(dsn)
        rated = args.meters * args.rounds
        growth = {}
        for name, now in sorted(after["tables"].items()):
            was = before["tables"].get(name, {"rows": 0, "bytes": 0})
            rows, size = now["rows"] - was["rows"], now["bytes"] - was["bytes"]
            if rows or size:
                growth[name] = {
                    "rows_added": rows,
                    "rows_per_reading": round(rows / rated, 3),
                    "bytes_added": size,
                    "bytes_per_reading": round(size / rated, 1),
                }
        wal = await wal_bytes(dsn, wal_start, wal_end)
        results |= {
            "readings_rated": rated,
            "feed_seconds": round(seconds, 1),
            "growth_by_table": growth,
            "bytes_per_reading_on_disk": round(
                sum(g["bytes_added"] for g in growth.values()) / rated, 1
            ),
            "wal_bytes_per_reading": {
                where: None if size is None else round(size / rated, 1)
                for where, size in wal.items()
            },
            "outbox_rows_left": await outbox_rows(dsn),
            "tables_after": after["tables"],
        }
    finally:
        admin = await asyncpg.connect(PG_ADMIN_DSN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--meters", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--output", default=str(ROOT / "bench-results" / "storage.json"))
    args = parser.parse_args()
    # A benchmark is a development run: the services take their development defaults.
    os.environ.setdefault("PREPAID_ENVIRONMENT", "development")
    os.environ.setdefault("PREPAID_LOG_LEVEL", "WARNING")
    began = time.monotonic()
    results = asyncio.run(orchestrate(args))
    write_results(args.output, results, began=began)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
