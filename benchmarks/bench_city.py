"""A city on one box (``make bench-city``, issue 17 item 1).

The cluster as deployed, each part its own process: ``--collectors`` collector replicas
(sharing the DTUs by their leases), billing, control, payments, the gateway, PostgreSQL and
RabbitMQ, plus the simulator with ``--dtus`` x ``--meters`` reference-prepaid meters (every
bus a 9600-baud RS485 line, 1x speed). One run:

1. a fresh PostgreSQL database and a private RabbitMQ prefix (``bench_relay_latency.Cluster``);
   the services start and migrate before anything is seeded;
2. seeding (timed), before a single DTU is registered, by a seeding process working set at a
   time through billing's own code: the tariff (``define_tariff``); every account's opening
   credit (60.00) as the ledger's ``top_up`` transactions written by ``store.ledger.post_many``
   (the one function that writes ledger entries and balances), 2,000 a transaction; the
   accounts and bindings through billing's bulk import (``ImportOperations.apply``, what
   ``POST /imports`` runs: accounts, bindings, the supply decision and its announcement to
   control), 5,000 a unit of work; then each account's trip and warning lines (50.00 and
   55.00), written as ``open_account`` writes them. What the per-account path writes and this
   does not: the opening credit's ``balance.changed.v1`` notice and the payment message's
   inbox row. Then the DTUs and meters through the collector's bulk import (its internal
   ``/internal/imports/apply``, what ``POST /imports`` calls; 250 DTUs a request);
3. warm-up until control holds a reported relay for every meter, then one more cycle;
4. **freshness**, every ``--sample-every`` s for ``--minutes``: the share of meters whose
   newest reading (the collectors' ``reading.batch.v1`` on the bus, tapped) is under
   ``--cycle`` s old, and the share whose balance includes one (billing's stored rating
   position, ``billing_meters.position -> last -> read_at``, written in the transaction that
   charges the reading);
5. **reading to balance committed**, meanwhile: ``--latency-meters`` meters drawn at random
   have their rating position read every ``--latency-every`` s; when a position moves to a
   newer reading, latency = the instant it was seen committed - the reading's ``read_at``
   (so the figure is late by up to one look, 0.1 s by default); the bus tap gives the stage
   in between (read_at -> batch on the bus);
6. CPU per service per reading (``/proc/<pid>/stat`` utime + stime over the window, divided
   by the readings billing stored in it), memory (RSS) per meter per service, the database's
   growth over the window scaled to a day, and the load average every sample;
7. **mass event**: ``--mass`` accounts (1 % by default; whole buses, the first DTUs)
   refunded 20.00 at once through billing's internal API (``--mass-concurrency`` in
   flight): each crosses its trip line; time from the first crossing until the last relay is
   reported open, against the bus-time bound (``simulator.timing``); then the same accounts
   topped up 20.00 through payments' internal top-up: time until the last relay is reported
   closed.

The collectors poll every ``--poll`` s (default 0.9 x ``--cycle``: a meter read every 60 s
exactly would sit at the 60-s line with half its readings). Writes ``bench-results/city.json``.

    flock /tmp/bench.lock make bench-city
    make bench-city BENCH_ARGS="--dtus 100 --minutes 2 --mass 100"   # a quick look, ~5 min
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import httpx
from bench_relay_latency import (
    AMQP_URL,
    OPENING,
    ROOT,
    TRIP_LINE,
    Cluster,
    Relays,
    Tap,
    define_tariff,
    mass_event,
    spread,
    stamp,
    warm_up,
)
from benchkit import machine, write_results

SERVICES = ("simulator", "billing", "control", "payments", "gateway")


# --- seeding role (its own process: billing's code, set at a time) ----------------------
async def seed_role(args: argparse.Namespace) -> None:
    from billing.bootstrap import build
    from billing.domain import ledger
    from billing.settings import BillingSettings
    from billing.store.ledger import post_many
    from billing.tables import accounts as accounts_table
    from prepaid_common.bus import InProcessBus
    from prepaid_common.contracts.api.imports import AccountRow, BindingRow, LedgerImport
    from prepaid_common.db import create_engine
    from sqlalchemy import update

    await define_tariff(args.database_url)
    engine = create_engine(args.database_url)
    service = build(BillingSettings(environment="development"), engine=engine, bus=InProcessBus())
    meters: list[str] = json.loads(Path(args.meters_file).read_text())  # noqa: ASYNC240
    began = time.monotonic()
    for first in range(0, len(meters), 2000):
        async with service.store.unit_of_work() as uow:
            await post_many(
                uow,
                [
                    ledger.top_up(
                        account_id=f"ACC-{meter}",
                        payment_id=f"seed-{meter}",
                        amount=OPENING,
                        method="cash",
                        reference=f"SEED-{meter}",
                        operator="bench",
                    )
                    for meter in meters[first : first + 2000]
                ],
            )
    credited = time.monotonic()
    for first in range(0, len(meters), 5000):
        chunk = meters[first : first + 5000]
        await service.operations.imports.apply(
            LedgerImport(
                accounts=[
                    AccountRow(
                        row=i + 2, id=f"ACC-{m}", name=f"ACC-{m}", tariff_id="bench-flat", groups=[]
                    )
                    for i, m in enumerate(chunk)
                ],
                bindings=[
                    BindingRow(row=i + 2, meter_id=m, account_id=f"ACC-{m}", multiplier=Decimal(1))
                    for i, m in enumerate(chunk)
                ],
                operator="bench",
            )
        )
    imported = time.monotonic()
    async with service.store.unit_of_work() as uow:
        await uow.session.execute(
            update(accounts_table)
            .where(accounts_table.c.id.like("ACC-%"))
            .values(trip_line=TRIP_LINE, warning_line=TRIP_LINE + 5)
        )
    await engine.dispose()
    print(
        json.dumps(
            {
                "credits_s": round(credited - began, 1),
                "accounts_and_bindings_s": round(imported - credited, 1),
                "terms_s": round(time.monotonic() - imported, 1),
            }
        ),
        flush=True,
    )


# --- the cluster with collector replicas ---------------------------------------------------
class City(Cluster):
    """bench_relay_latency's cluster with ``--collectors`` collector replicas."""

    def __init__(self, scratch: Path, args: argparse.Namespace) -> None:
        super().__init__(scratch, args)
        self.database = f"bench_city_{self.run_id}"
        self.database_url = self.database_url.rsplit("/", 1)[0] + f"/{self.database}"
        self.dsn = self.dsn.rsplit("/", 1)[0] + f"/{self.database}"
        self.replica_ports: list[int] = []
        self.import_retries = 0

    async def start_services(self) -> None:
        from bench_relay_latency import free_port

        self.ports = {name: free_port() for name in ("collector", "billing", "control", "payments")}
        self.gateway_port = free_port()
        self.replica_ports = [self.ports["collector"]] + [
            free_port() for _ in range(self.args.collectors - 1)
        ]
        for name, port in self.ports.items():
            if name == "collector":
                for index, replica_port in enumerate(self.replica_ports):
                    replica = f"collector-{index + 1}"
                    env = self.env(
                        PREPAID_SERVICE_PORT=str(replica_port),
                        PREPAID_COLLECTOR_INSTANCE=replica,
                        PREPAID_LOG_LEVEL="INFO",  # its "command carried out" lines
                    )
                    self.spawn(replica, ["-m", "collector"], env)
                    await self.wait_ready(replica, port=replica_port)
                continue
            self.spawn(name, ["-m", name], self.env(PREPAID_SERVICE_PORT=str(port)))
            # One at a time: each migrates the shared database at start.
            await self.wait_ready(name)
        self.spawn("gateway", ["-m", "gateway"], self.env())
        await self.wait_ready("gateway", path="/healthz")

    async def wait_ready(self, name: str, path: str = "/readyz", port: int | None = None) -> None:
        url = f"http://127.0.0.1:{port}" if port is not None else self.url(name)
        async with httpx.AsyncClient() as client:
            for _ in range(1200):
                if self.children[name].poll() is not None:
                    self.show_log(name)
                    raise RuntimeError(f"{name} exited at start")
                try:
                    if (await client.get(url + path)).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{name} did not become ready")

    async def seed_city(self, field: list[dict[str, Any]], meters: list[str]) -> dict[str, Any]:
        began = time.monotonic()
        meters_file = self.scratch / "meters.json"
        meters_file.write_text(json.dumps(meters))
        seeder = subprocess.run(  # noqa: ASYNC221 - the one thing happening meanwhile
            [
                sys.executable,
                __file__,
                "seed",
                "--database-url",
                self.database_url,
                "--meters-file",
                str(meters_file),
            ],
            env=self.env(),
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        if seeder.returncode != 0:
            print(seeder.stdout, seeder.stderr, file=sys.stderr)
            raise RuntimeError("seeding failed")
        parts = json.loads(seeder.stdout.strip().splitlines()[-1])
        accounts_s = time.monotonic() - began
        # The DTUs and meters through the collector's bulk import (what the gateway's
        # POST /imports calls), 250 DTUs a request: one transaction each.
        headers = {"X-Service-Credential": self.credential}
        async with httpx.AsyncClient(base_url=self.url("collector"), headers=headers) as client:
            for first in range(0, len(field), 250):
                dtus: list[list[Any]] = []
                rows: list[list[Any]] = []
                for dtu in field[first : first + 250]:
                    row = len(rows) + 2
                    dtus.append([row, dtu["id"], dtu.get("name") or dtu["id"], dtu.get("kind")])
                    dtus[-1] += [dtu.get("host"), dtu.get("port")]
                    for meter in dtu["meters"]:
                        address = meter.get("address") or str(meter["unit_id"])
                        rows.append(
                            [len(rows) + 2, meter["id"], dtu["id"], address, meter["profile"]]
                        )
                for _ in range(30):
                    answer = await client.post(
                        "/internal/imports/apply", json={"dtus": dtus, "meters": rows}, timeout=300
                    )
                    # 503: the collector's connection pool is taken by the bus loops of the
                    # DTUs just imported, each loading its settings; the import is all or
                    # nothing and applying it again is safe.
                    if answer.status_code != 503:
                        break
                    self.import_retries += 1
                    await asyncio.sleep(5)
                answer.raise_for_status()
        return {
            "accounts_seeded_s": round(accounts_s, 1),
            "accounts_seeded_parts_s": parts,
            "dtus_registered_s": round(time.monotonic() - began - accounts_s, 1),
            "dtu_import_retries_after_503": self.import_retries,
            "total_s": round(time.monotonic() - began, 1),
        }

    def rss(self) -> dict[str, int]:
        figures = {}
        for name, child in self.children.items():
            figures[name] = rss_of(child.pid)
        return figures


def rss_of(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def cpu_of(pids: list[int]) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def broker_pids() -> list[int]:
    """RabbitMQ's Erlang VM (the whole broker, whoever else uses it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "beam.smp":
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


# --- watching ----------------------------------------------------------------------------
class ReadingTap:
    """Every reading the collectors publish: each meter's newest read_at, and when seen."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.newest: dict[str, float] = {}
        self.published: dict[tuple[str, float], float] = {}  # (meter, read_at) -> arrival
        self.watched: set[str] = set()
        self.count = 0
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None

    async def start(self) -> None:
        self._connection = await aio_pika.connect_robust(AMQP_URL)
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=100)
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        for kind in ("reading.batch.v1", "reading.v1"):
            await queue.bind(f"{self.prefix}.events", routing_key=f"{kind}.#")
        await queue.consume(self._on_message, no_ack=True)

    async def _on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        arrived = time.time()
        envelope = json.loads(message.body)
        payload = envelope["payload"]
        readings = payload.get("readings") or [payload]
        for reading in readings:
            meter, text = reading["meter_id"], reading["read_at"]
            read_at = stamp(text)
            self.count += 1
            if read_at > self.newest.get(meter, 0.0):
                self.newest[meter] = read_at
            if meter in self.watched:
                self.published[(meter, round(read_at, 3))] = arrived

    def fresh(self, now: float, limit: float) -> int:
        return sum(1 for read_at in self.newest.values() if now - read_at < limit)

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()


POSITION_READ_AT = "(position::json -> 'last' ->> 'read_at')"


async def rated_fresh(connection: asyncpg.Connection, limit: float) -> int:
    count: int = await connection.fetchval(
        f"SELECT count(*) FROM billing_meters WHERE {POSITION_READ_AT}::timestamptz"
        " > now() - make_interval(secs => $1)",
        limit,
    )
    return count


async def watch_latency(
    dsn: str, meters: list[str], every: float, tap: ReadingTap, stop: asyncio.Event
) -> list[dict[str, float]]:
    """Each watched meter's rating position, read every ``every`` s: when a newer reading
    is in, the reading's age at that moment (and when the bus carried it)."""
    connection = await asyncpg.connect(dsn)
    last: dict[str, str | None] = {}
    samples: list[dict[str, float]] = []
    try:
        while not stop.is_set():
            rows = await connection.fetch(
                f"SELECT meter_id, {POSITION_READ_AT} AS read_at FROM billing_meters"
                " WHERE meter_id = ANY($1::text[])",
                meters,
            )
            now = time.time()
            for row in rows:
                meter, text = row["meter_id"], row["read_at"]
                before = last.get(meter, "")
                last[meter] = text
                if before == "" or text is None or text == before:
                    continue  # the first look only fixes where each meter stands
                read_at = stamp(text)
                sample = {"committed_s": now - read_at}
                published = tap.published.pop((meter, round(read_at, 3)), None)
                if published is not None:
                    sample["published_s"] = published - read_at
                samples.append(sample)
            await asyncio.sleep(every)
    finally:
        await connection.close()
    return samples


async def database_size(connection: asyncpg.Connection) -> int:
    size: int = await connection.fetchval("SELECT pg_database_size(current_database())")
    return size


async def readings_stored(connection: asyncpg.Connection) -> int:
    count: int = await connection.fetchval("SELECT count(*) FROM billing_readings")
    return count


async def table_sizes(connection: asyncpg.Connection) -> dict[str, int]:
    rows = await connection.fetch(
        "SELECT relname, pg_total_relation_size(relid) AS size FROM pg_stat_user_tables"
    )
    return {row["relname"]: row["size"] for row in rows}


async def backend_pids(connection: asyncpg.Connection) -> list[int]:
    rows = await connection.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
    )
    return [row["pid"] for row in rows]


def load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def service_cpu(city: City, database_pids: list[int]) -> dict[str, float]:
    figures = {name: cpu_of([child.pid]) for name, child in city.children.items()}
    figures["postgresql (this database's backends)"] = cpu_of(database_pids)
    figures["rabbitmq (whole broker)"] = cpu_of(broker_pids())
    return figures


async def measure(
    city: City, tap: ReadingTap, meters: list[str], args: argparse.Namespace
) -> dict[str, Any]:
    connection = await asyncpg.connect(city.dsn)
    chooser = random.Random(args.seed)
    watched = chooser.sample(meters, min(args.latency_meters, len(meters)))
    tap.watched = set(watched)
    stop = asyncio.Event()
    watcher = asyncio.create_task(watch_latency(city.dsn, watched, args.latency_every, tap, stop))
    database_pids = await backend_pids(connection)
    cpu_before = service_cpu(city, database_pids)
    size_before, stored_before = await database_size(connection), await readings_stored(connection)
    tables_before = await table_sizes(connection)
    tapped_before = tap.count
    began = time.monotonic()
    samples: list[dict[str, Any]] = []
    end = began + args.minutes * 60
    while time.monotonic() < end:
        now = time.time()
        fresh = tap.fresh(now, args.cycle)
        rated = await rated_fresh(connection, args.cycle)
        samples.append(
            {
                "t_s": round(time.monotonic() - began, 1),
                "newest_reading_fresh": round(fresh / len(meters), 5),
                "balance_fresh": round(rated / len(meters), 5),
                "load": load(),
            }
        )
        print(f"sample: {samples[-1]}", flush=True)
        await asyncio.sleep(max(0.0, args.sample_every - (time.time() - now)))
    spent = time.monotonic() - began
    # The backends of this database now (the pools open more as they need them).
    database_pids = sorted(set(database_pids) | set(await backend_pids(connection)))
    cpu_after = service_cpu(city, database_pids)
    size_after, stored_after = await database_size(connection), await readings_stored(connection)
    tables_after = await table_sizes(connection)
    stop.set()
    latency = await watcher
    rss = city.rss()
    readings = stored_after - stored_before
    await connection.close()
    per_reading = {
        name: round((cpu_after[name] - cpu_before.get(name, 0.0)) / max(1, readings) * 1e6, 1)
        for name in cpu_after
    }
    return {
        "window_s": round(spent, 1),
        "readings_billed": readings,
        "readings_billed_per_s": round(readings / spent, 1),
        "readings_tapped_per_s": round((tap.count - tapped_before) / spent, 1),
        "newest_reading_fresh_share": {
            "min": min(s["newest_reading_fresh"] for s in samples),
            "mean": round(statistics_mean([s["newest_reading_fresh"] for s in samples]), 5),
            "target": 0.999,
        },
        "balance_fresh_share": {
            "min": min(s["balance_fresh"] for s in samples),
            "mean": round(statistics_mean([s["balance_fresh"] for s in samples]), 5),
            "target": 0.999,
        },
        "reading_to_balance_committed_s": {
            **spread([s["committed_s"] for s in latency]),
            "target_p99_s": 2.0,
            "meters_watched": len(watched),
            "look_every_s": args.latency_every,
        },
        "reading_to_batch_on_bus_s": spread(
            [s["published_s"] for s in latency if "published_s" in s]
        ),
        "cpu_core_share": {
            name: round((cpu_after[name] - cpu_before.get(name, 0.0)) / spent, 3)
            for name in cpu_after
        },
        "cpu_us_per_reading": per_reading,
        "rss_bytes": rss,
        "rss_bytes_per_meter": {name: round(v / len(meters), 1) for name, v in rss.items()},
        "database_bytes": {"before": size_before, "after": size_after},
        "database_growth_per_day_bytes": round((size_after - size_before) / spent * 86400),
        # The tables that grew most (outbox and inbox rows are deleted again; their space is
        # reused after a vacuum, so part of their growth is churn, not kept data).
        "table_growth_per_day_bytes": dict(
            sorted(
                (
                    (name, round((size - tables_before.get(name, 0)) / spent * 86400))
                    for name, size in tables_after.items()
                ),
                key=lambda item: -item[1],
            )[:10]
        ),
        "tables_after_bytes": dict(sorted(tables_after.items(), key=lambda item: -item[1])[:10]),
        "samples": samples,
    }


def statistics_mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"machine": machine(), "parameters": vars(args)}
    loads: dict[str, list[float]] = {"start": load()}
    results["load_average"] = loads
    with tempfile.TemporaryDirectory(prefix="bench-city-") as directory:
        scratch = Path(directory)
        city = City(scratch, args)
        tap = Tap(city.prefix)
        readings = ReadingTap(city.prefix)
        relays = Relays(city.dsn)
        await city.create()
        try:
            field = await city.start_field()
            await city.start_services()
            meters = [m["id"] for dtu in field for m in dtu["meters"]]
            accounts = [f"ACC-{m}" for m in meters]
            loads["seeding"] = load()
            results["seeding"] = await city.seed_city(field, meters)
            print(f"seeded: {results['seeding']}", flush=True)
            await tap.start()
            await readings.start()
            await relays.start()
            loads["warm_up"] = load()
            results["warm_up_s"] = round(
                await warm_up(relays, len(meters), time.monotonic() + args.warm_up_deadline), 1
            )
            print(f"warm: {results['warm_up_s']} s", flush=True)
            await asyncio.sleep(args.cycle)  # one more cycle: every loop in its steady state
            loads["measuring"] = load()
            results["steady"] = await measure(city, readings, meters, args)
            results["field"] = {
                "dtus": args.dtus,
                "meters_per_dtu": args.meters,
                "meters": len(meters),
                "baud": args.baud,
                "cycle_s": args.cycle,
                "poll_interval_s": args.poll,
                "collector_replicas": args.collectors,
            }
            if args.mass:
                mass = accounts[: args.mass]  # whole buses, the first DTUs
                loads["mass_event"] = load()
                results["mass_trip"] = await mass_event(city, tap, relays, mass, args)
                print(f"mass trip: {results['mass_trip']}", flush=True)
                loads["mass_restore"] = load()
                results["mass_restore"] = await mass_event(
                    city, tap, relays, mass, args, action="top_up"
                )
                print(f"mass restore: {results['mass_restore']}", flush=True)
            loads["end"] = load()
        except BaseException:
            for name in city.children:
                city.show_log(name, 15)
            kept = Path(args.output).with_name("city-logs")
            shutil.rmtree(kept, ignore_errors=True)
            shutil.copytree(scratch, kept, ignore=shutil.ignore_patterns("*.sock", "pg*"))
            print(f"the services' logs are kept in {kept}", file=sys.stderr)
            raise
        finally:
            await tap.close()
            await readings.close()
            await relays.close()
            await city.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="role")
    seeder = sub.add_parser("seed")
    seeder.add_argument("--database-url", required=True)
    seeder.add_argument("--meters-file", required=True)
    parser.add_argument("--dtus", type=int, default=3125)
    parser.add_argument("--meters", type=int, default=32, help="meters per DTU (per bus)")
    parser.add_argument("--baud", type=int, default=9600)
    parser.add_argument("--cycle", type=float, default=60.0, help="freshness limit, s")
    parser.add_argument("--poll", type=float, default=None, help="default 0.9 x --cycle")
    parser.add_argument("--collectors", type=int, default=2, help="collector replicas")
    parser.add_argument("--minutes", type=float, default=10.0, help="measured minutes")
    parser.add_argument("--sample-every", type=float, default=10.0)
    parser.add_argument("--latency-meters", type=int, default=1000)
    parser.add_argument("--latency-every", type=float, default=0.1)
    parser.add_argument("--mass", type=int, default=1000, help="accounts in the mass event")
    parser.add_argument("--mass-concurrency", type=int, default=32)
    parser.add_argument("--warm-up-deadline", type=float, default=900.0)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--output", default=str(ROOT / "bench-results" / "city.json"))
    args = parser.parse_args()
    if args.role == "seed":
        asyncio.run(seed_role(args))
        return
    if args.poll is None:
        args.poll = round(0.9 * args.cycle, 1)
    began = time.monotonic()
    write_results(args.output, asyncio.run(run(args)), began=began)


if __name__ == "__main__":
    main()
