"""Relay latency on a cluster at field scale (``make bench-relay-latency``).

Issues 11 and 12 ask for the time from money moving to the meter's relay REPORTED in its new
state (read back from the meter), on 9600-baud buses while 10,000 meters are polled. One run:

1. a fresh PostgreSQL database and a private RabbitMQ prefix; the simulator (``--dtus`` x
   ``--meters`` reference-prepaid meters, every bus a 9600-baud RS485 line, 1x speed) and
   each service as its own process, as ``make run-cluster`` starts them (collector, billing,
   control, payments, gateway), control sealing with a 3DES master key the collector
   verifies with, payments configured for WeChat Pay and Alipay with the fake providers'
   keys;
2. bulk seeding: the DTUs through the collector's internal API (one call per DTU, eight at a
   time), the accounts from several seeding processes through billing's own operations
   (``open_account``, the payment handler, ``bind_meter``) straight on the database: trip
   line 50.00, opening credit 60.00, one meter each;
3. warm-up until control holds a reported relay for every bound meter (each polled once);
4. **open** (issue 12): ``--samples`` accounts, one after another, refunded 20.00 through
   billing's internal API (balance 40.00, below the trip line): from the refund's commit
   (billing's ``balance.changed.v1`` instant) to control holding the relay reported open;
5. **closed** (issue 12): the same accounts topped up 20.00 at the counter (payments'
   internal top-up): from billing's credit commit to the relay reported closed;
6. **notification** (issue 11): ``--samples`` other accounts are cut first, then each gets a
   pending order and a real signed paid notification (WeChat Pay v3 and Alipay RSA2 in turn,
   built by ``simulator.payproviders``) posted to the gateway's public webhook: from the
   post to the relay reported closed;
7. **mass event** (issue 12): ``--mass`` accounts (whole buses: ``--mass // --meters``
   DTUs) refunded at once (``--mass-concurrency`` requests in flight): time from the first
   crossing until the last relay is reported open, against the bus-time bound (what the
   buses physically need for those writes and read-backs, ``simulator.timing``).

Every event on the bus is tapped (a private queue bound to ``#``) with its arrival time, and
the collector logs each command it carries out ("command carried out": time waited for its
bus, bus time, recording time), so each sample is broken into stages: credit committed ->
relay requested (billing) -> command sealed (control) -> bus slot -> write + read-back ->
result published (collector) -> relay stored (control). "Reported" is when the bench sees
the relay in control's table (polled every 50 ms; control keeps what the collector read
back). Writes ``bench-results/relay-latency.json``.

    flock /tmp/bench.lock make bench-relay-latency
    make bench-relay-latency BENCH_ARGS="--dtus 50 --samples 10 --mass 200"   # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import httpx
from benchkit import machine, service_port, write_results

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_DSN = os.environ.get(
    "PREPAID_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
AMQP_URL = os.environ.get("PREPAID_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
PROFILE = "reference-prepaid"
TRIP_LINE = Decimal("50.00")
OPENING = Decimal("60.00")
STEP = Decimal("20.00")  # refund: 60 -> 40 (below the line); top-up: 40 -> 60
TAPPED = (
    "balance.changed.v1",
    "payment.succeeded.v1",
    "relay.requested.v1",
    "command.request.v1",
    "command.result.v1",
)
PYTHONPATH = os.pathsep.join(
    str(ROOT / p)
    for p in (
        "libs",
        "services/collector",
        "services/billing",
        "services/control",
        "services/payments",
        "services/api-gateway",
        "services/simulator",
    )
)


# --- small helpers -----------------------------------------------------------------------
def free_port() -> int:
    return service_port()


def nearest_rank(ordered: list[float], share: float) -> float:
    """The nearest-rank percentile of sorted values (with few samples, p99 is the maximum)."""
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def spread(values: list[float]) -> dict[str, float | int]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "p50_s": round(statistics.median(ordered), 3),
        "p99_s": round(nearest_rank(ordered, 0.99), 3),
        "max_s": round(ordered[-1], 3),
    }


def stamp(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def bus_time_bound(meters_per_bus: list[int], baud: int) -> dict[str, float]:
    """What the buses physically need to trip ``n`` meters each: write + read-back each.

    A bus may be in the middle of a poll when the first command arrives (one 21-register
    read at most); then each meter takes an FC06 write (8 bytes out, 8 echoed) and an FC03
    read of its relay register (8 out, 7 back). Buses work in parallel: the bound is the
    busiest bus's time.
    """
    from simulator.timing import SerialLine, rtu_read_bytes

    line = SerialLine(baud=baud)
    write = line.exchange_seconds(8, 8)
    read_back = line.exchange_seconds(*rtu_read_bytes(1))
    poll = line.exchange_seconds(*rtu_read_bytes(21))
    busiest = max(meters_per_bus)
    return {
        "write_s": round(write, 4),
        "read_back_s": round(read_back, 4),
        "poll_in_flight_s": round(poll, 4),
        "meters_on_busiest_bus": busiest,
        "bound_s": round(poll + busiest * (write + read_back), 3),
    }


# --- seeding role (its own process: billing's operations, straight on the database) -------
async def seed_role(args: argparse.Namespace) -> None:
    from billing.bootstrap import build
    from billing.settings import BillingSettings
    from prepaid_common.bus import InProcessBus
    from prepaid_common.contracts import Envelope, PaymentSucceededV1
    from prepaid_common.contracts.api.billing import AccountTerms
    from prepaid_common.db import create_engine

    engine = create_engine(args.database_url)
    service = build(BillingSettings(environment="development"), engine=engine, bus=InProcessBus())
    pay = service.store.idempotent(service.handlers.handle_payment)
    terms = AccountTerms(trip_line=TRIP_LINE, warning_line=TRIP_LINE + 5)
    listed = json.loads(Path(args.meters_file).read_text())  # noqa: ASYNC240 - before any task
    meters = listed[args.first : args.first + args.count]

    async def one(meter: str) -> None:
        account = f"ACC-{meter}"
        await service.operations.accounts.open_account(
            account_id=account,
            name=account,
            tariff_id="bench-flat",
            price_per_kwh=None,
            terms=terms,
            groups=[],
            operator="bench",
        )
        await pay(
            Envelope.wrap(
                PaymentSucceededV1(
                    payment_id=f"seed-{meter}",
                    account_id=account,
                    amount=OPENING,
                    method="cash",
                    reference=f"SEED-{meter}",
                    at=datetime.now(UTC),
                ),
                producer="bench",
            )
        )
        await service.operations.meters.bind_meter(meter_id=meter, account_id=account)

    queue: asyncio.Queue[str] = asyncio.Queue()
    for meter in meters:
        queue.put_nowait(meter)

    async def worker() -> None:
        while not queue.empty():
            await one(queue.get_nowait())

    await asyncio.gather(*(worker() for _ in range(8)))
    await engine.dispose()


async def define_tariff(database_url: str) -> None:
    from billing.bootstrap import build
    from billing.domain.tariffs import TariffDefinition
    from billing.settings import BillingSettings
    from prepaid_common.bus import InProcessBus
    from prepaid_common.db import create_engine

    engine = create_engine(database_url)
    service = build(BillingSettings(environment="development"), engine=engine, bus=InProcessBus())
    await service.operations.tariffs.define_tariff(
        tariff_id="bench-flat",
        name="Bench flat",
        definition=TariffDefinition(kind="flat", price_per_kwh=Decimal("0.8")),
        effective_from=None,
        operator="bench",
    )
    await engine.dispose()


# --- the cluster -------------------------------------------------------------------------
class Cluster:
    """The simulator and the services, each its own process, on one database and prefix."""

    def __init__(self, scratch: Path, args: argparse.Namespace) -> None:
        self.scratch = scratch
        self.args = args
        self.run_id = uuid.uuid4().hex[:8]
        self.database = f"bench_relay_{self.run_id}"
        self.prefix = f"bench-{self.run_id}"
        host = PG_ADMIN_DSN.split("@", 1)[1].split("/", 1)[0]
        user = PG_ADMIN_DSN.split("//", 1)[1].split("@", 1)[0]
        self.database_url = f"postgresql+asyncpg://{user}@{host}/{self.database}"
        self.dsn = PG_ADMIN_DSN.rsplit("/", 1)[0] + f"/{self.database}"
        self.credential = secrets.token_urlsafe(32)
        # Chosen once the simulator listens (its DTUs take any free ports).
        self.ports: dict[str, int] = {}
        self.gateway_port = 0
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        # One secret of each kind for the whole cluster: control seals with the master key
        # the collector verifies with.
        self.token_secret = secrets.token_urlsafe(32)
        self.master_keys = "1 " + secrets.token_hex(16)
        from simulator.payproviders import FakeKeys

        self.keys = FakeKeys.generate()
        self.merchant = self.keys.write_merchant_files(scratch / "merchant")

    def url(self, service: str) -> str:
        if service == "gateway":
            return f"http://127.0.0.1:{self.gateway_port}"
        return f"http://127.0.0.1:{self.ports.get(service, 0)}"

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            **{f"PREPAID_{name.upper()}": value for name, value in self.merchant.items()},
            "PREPAID_ENVIRONMENT": "development",
            "PREPAID_DATABASE_URL": self.database_url,
            "PREPAID_AMQP_URL": AMQP_URL,
            "PREPAID_BUS_PREFIX": self.prefix,
            "PREPAID_SERVICE_CREDENTIAL": self.credential,
            "PREPAID_TOKEN_SECRET": self.token_secret,
            "PREPAID_COMMAND_MASTER_KEYS": self.master_keys,
            "PREPAID_PUBLIC_BASE_URL": "https://bench.example.com",
            "PREPAID_WECHATPAY_BASE_URL": "http://127.0.0.1:9",
            "PREPAID_ALIPAY_GATEWAY_URL": "http://127.0.0.1:9/gateway.do",
            "PREPAID_LOG_LEVEL": "WARNING",
            "PREPAID_LOG_FORMAT": "json",
            "PREPAID_COLLECTOR_LISTEN_PORT": "0",
            "PREPAID_POLL_INTERVAL_SECONDS": str(self.args.poll),
            "PREPAID_COLLECTOR_URL": self.url("collector"),
            "PREPAID_BILLING_URL": self.url("billing"),
            "PREPAID_CONTROL_URL": self.url("control"),
            "PREPAID_PAYMENTS_URL": self.url("payments"),
            "PREPAID_HTTP_PORT": str(self.gateway_port),
            "PYTHONPATH": PYTHONPATH,
            **extra,
        }

    def spawn(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (self.scratch / f"{name}.log").open("wb")
        child = subprocess.Popen(
            [sys.executable, *argv], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
        )
        self.children[name] = child
        return child

    async def create(self) -> None:
        admin = await asyncpg.connect(PG_ADMIN_DSN)
        await admin.execute(f'CREATE DATABASE "{self.database}"')
        await admin.close()

    async def start_field(self) -> list[dict[str, Any]]:
        out = self.scratch / "field.json"
        env = self.env()
        argv = [
            "-m",
            "simulator",
            "--dtus",
            str(self.args.dtus),
            "--meters",
            str(self.args.meters),
            "--profile-mix",
            f"{PROFILE}=1",
            "--baud",
            str(self.args.baud),
            "--speed",
            "1",
        ]
        log = (self.scratch / "simulator.log").open("wb")
        with out.open("wb") as stdout:
            child = subprocess.Popen(  # noqa: ASYNC220 - a child that runs on, not awaited
                [sys.executable, *argv], env=env, cwd=ROOT, stdout=stdout, stderr=log
            )
        self.children["simulator"] = child
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if child.poll() is not None:
                raise RuntimeError("the simulator exited at start")
            text = out.read_text()
            if text.rstrip().endswith("]"):
                with contextlib.suppress(json.JSONDecodeError):
                    field: list[dict[str, Any]] = json.loads(text)
                    return field
            await asyncio.sleep(0.5)
        raise RuntimeError("the simulator did not list its DTUs")

    async def start_services(self) -> None:
        self.ports = {name: free_port() for name in ("collector", "billing", "control", "payments")}
        self.gateway_port = free_port()
        for name, port in self.ports.items():
            env = self.env(PREPAID_SERVICE_PORT=str(port))
            if name == "collector":
                env["PREPAID_LOG_LEVEL"] = "INFO"  # its "command carried out" lines
            self.spawn(name, ["-m", name], env)
            # One at a time: each migrates the shared database at start.
            await self.wait_ready(name)
        self.spawn("gateway", ["-m", "gateway"], self.env())
        await self.wait_ready("gateway", path="/healthz")

    async def wait_ready(self, name: str, path: str = "/readyz") -> None:
        async with httpx.AsyncClient() as client:
            for _ in range(1200):
                if self.children[name].poll() is not None:
                    self.show_log(name)
                    raise RuntimeError(f"{name} exited at start")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(self.url(name) + path)).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{name} did not become ready")

    def show_log(self, name: str, lines: int = 30) -> None:
        path = self.scratch / f"{name}.log"
        if path.exists():
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            print(f"--- {name} ---\n" + "\n".join(tail), file=sys.stderr)

    def cpu(self) -> dict[str, float]:
        ticks = os.sysconf("SC_CLK_TCK")
        figures = {}
        for name, child in self.children.items():
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()
                figures[name] = (int(fields[11]) + int(fields[12])) / ticks
        return figures

    async def stop(self) -> None:
        for child in self.children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for name, child in self.children.items():
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                print(f"{name} did not stop; killing it", file=sys.stderr)
                child.kill()
        await self._delete_topology()
        admin = await asyncpg.connect(PG_ADMIN_DSN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        await admin.close()

    async def _delete_topology(self) -> None:
        from prepaid_common.bus.rabbit import RabbitBus

        bus = RabbitBus(AMQP_URL, prefix=self.prefix)
        try:
            await bus.start()
            await bus.delete_topology()
            await bus.close()
        except Exception as error:  # cleanup must not hide the run's own error
            print(f"bus cleanup failed: {error!r}", file=sys.stderr)

    async def seed(self, field: list[dict[str, Any]], accounts: list[str]) -> dict[str, float]:
        began = time.monotonic()
        limit = asyncio.Semaphore(8)
        headers = {"X-Service-Credential": self.credential}
        async with httpx.AsyncClient(base_url=self.url("collector"), headers=headers) as client:

            async def register(dtu: dict[str, Any]) -> None:
                async with limit:
                    (await client.post("/internal/dtus", json=dtu, timeout=120)).raise_for_status()

            await asyncio.gather(*(register(dtu) for dtu in field))
        registered = time.monotonic() - began
        await define_tariff(self.database_url)
        meters_file = self.scratch / "meters.json"
        meters_file.write_text(json.dumps([a.removeprefix("ACC-") for a in accounts]))
        processes = max(1, min(4, os.cpu_count() or 2))
        share = -(-len(accounts) // processes)
        seeders = [
            subprocess.Popen(  # noqa: ASYNC220 - children that run on, polled below
                [
                    sys.executable,
                    __file__,
                    "seed",
                    "--database-url",
                    self.database_url,
                    "--meters-file",
                    str(meters_file),
                    "--first",
                    str(first),
                    "--count",
                    str(share),
                ],
                env=self.env(),
                cwd=ROOT,
            )
            for first in range(0, len(accounts), share)
        ]
        while any(seeder.poll() is None for seeder in seeders):  # noqa: ASYNC110 - child processes
            await asyncio.sleep(0.5)
        if any(seeder.returncode != 0 for seeder in seeders):
            raise RuntimeError("seeding failed")
        return {
            "dtus_registered_s": round(registered, 1),
            "accounts_seeded_s": round(time.monotonic() - began - registered, 1),
        }


# --- watching ----------------------------------------------------------------------------
class Tap:
    """Every tapped event on the bus, by meter (or account), with its arrival time."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.by_key: dict[tuple[str, str], list[tuple[float, dict[str, Any]]]] = defaultdict(list)
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None

    async def start(self) -> None:
        self._connection = await aio_pika.connect_robust(AMQP_URL)
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=1000)
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        for kind in TAPPED:
            await queue.bind(f"{self.prefix}.events", routing_key=f"{kind}.#")
        await queue.consume(self._on_message, no_ack=True)

    async def _on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        arrived = time.time()
        envelope = json.loads(message.body)
        payload = envelope["payload"]
        key = payload.get("meter_id") or payload.get("account_id") or ""
        self.by_key[(envelope["type"], key)].append((arrived, payload))

    def first_after(
        self, event: str, key: str, after: float, /, **match: Any
    ) -> tuple[float, dict[str, Any]] | None:
        """The first ``event`` for ``key`` that arrived at ``after`` or later and whose payload
        has every ``match`` field (``kind="refund"``: a balance change by a refund)."""
        for arrived, payload in self.by_key.get((event, key), []):
            if arrived >= after and all(payload.get(k) == v for k, v in match.items()):
                return arrived, payload
        return None

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()


class Relays:
    """Control's table of reported relays, watched every 50 ms."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.connection: asyncpg.Connection | None = None

    async def start(self) -> None:
        self.connection = await asyncpg.connect(self.dsn)

    async def states(self, meters: list[str]) -> dict[str, str | None]:
        assert self.connection is not None
        rows = await self.connection.fetch(
            "SELECT meter_id, relay FROM control_meters WHERE meter_id = ANY($1::text[])", meters
        )
        return {row["meter_id"]: row["relay"] for row in rows}

    async def reported_count(self) -> int:
        assert self.connection is not None
        count: int = await self.connection.fetchval(
            "SELECT count(*) FROM control_meters WHERE relay IS NOT NULL"
        )
        return count

    async def wait(self, meters: list[str], wanted: str, deadline: float) -> dict[str, float]:
        """Until each meter's relay is ``wanted`` (or the deadline): when each was seen so."""
        seen: dict[str, float] = {}
        waiting = list(meters)
        while waiting and time.monotonic() < deadline:
            states = await self.states(waiting)
            now = time.time()
            for meter in waiting:
                if states.get(meter) == wanted:
                    seen[meter] = now
            waiting = [m for m in waiting if m not in seen]
            if waiting:
                await asyncio.sleep(0.05)
        return seen

    async def close(self) -> None:
        if self.connection is not None:
            await self.connection.close()


def collector_lines(scratch: Path) -> dict[str, dict[str, Any]]:
    """The collectors' "command carried out" lines (every replica's log), by command id."""
    lines: dict[str, dict[str, Any]] = {}
    for path in sorted(scratch.glob("collector*.log")):
        for text in path.read_text(errors="replace").splitlines():
            if "command carried out" not in text:
                continue
            with contextlib.suppress(json.JSONDecodeError):
                record = json.loads(text)
                lines[record["command_id"]] = record
    return lines


def stages(
    tap: Tap, carried: dict[str, dict[str, Any]], meter: str, start: float, seen: float
) -> dict[str, float | None]:
    """One sample's path, each stage's end in seconds after ``start``."""
    account = f"ACC-{meter}"
    # Events of this sample only: the bench's own earlier moves on the meter came before.
    after = start - 0.01
    stops: dict[str, float | None] = {}
    credit = tap.first_after("balance.changed.v1", account, after)
    stops["credit_committed"] = None if credit is None else stamp(credit[1]["at"]) - start
    requested = tap.first_after("relay.requested.v1", meter, after)
    stops["relay_requested_published"] = None if requested is None else requested[0] - start
    command = tap.first_after("command.request.v1", meter, after)
    stops["command_sealed"] = None if command is None else stamp(command[1]["issued_at"]) - start
    stops["command_published"] = None if command is None else command[0] - start
    if command is not None and command[1]["command_id"] in carried:
        line = carried[command[1]["command_id"]]
        finished = stamp(line["time"])
        stops["bus_slot"] = finished - line["record_ms"] / 1000 - line["bus_ms"] / 1000 - start
        stops["read_back"] = finished - line["record_ms"] / 1000 - start
        stops["result_recorded"] = finished - start
    result = tap.first_after("command.result.v1", meter, after)
    stops["result_published"] = None if result is None else result[0] - start
    stops["relay_reported"] = seen - start
    return {k: None if v is None else round(v, 3) for k, v in stops.items()}


def stage_spread(samples: list[dict[str, Any]]) -> dict[str, Any]:
    names: list[str] = []
    for sample in samples:
        names += [n for n in sample["stages"] if n not in names]
    return {
        name: spread([s["stages"][name] for s in samples if s["stages"].get(name) is not None])
        for name in names
    }


# --- phases ------------------------------------------------------------------------------
async def refund(client: httpx.AsyncClient, account: str, tag: str) -> None:
    body = {"amount": str(STEP), "key": f"{tag}-{account}", "reason": "bench", "operator": "bench"}
    (await client.post(f"/internal/accounts/{account}/refunds", json=body)).raise_for_status()


async def top_up(client: httpx.AsyncClient, account: str, tag: str) -> None:
    body = {"account_id": account, "amount": str(STEP), "receipt": f"{tag}-{account}"}
    (await client.post("/internal/top-ups", json={**body, "operator": "bench"})).raise_for_status()


async def singles(
    cluster: Cluster,
    tap: Tap,
    relays: Relays,
    accounts: list[str],
    *,
    action: str,
    pause: float,
) -> list[dict[str, Any]]:
    """Move money on each account in turn; time each relay to its reported state."""
    headers = {"X-Service-Credential": cluster.credential}
    service = "billing" if action == "refund" else "payments"
    wanted = "open" if action == "refund" else "closed"
    samples = []
    async with httpx.AsyncClient(base_url=cluster.url(service), headers=headers, timeout=60) as api:
        for account in accounts:
            meter = account.removeprefix("ACC-")
            posted = time.time()
            if action == "refund":
                await refund(api, account, "single")
            else:
                await top_up(api, account, "single")
            seen = await relays.wait([meter], wanted, time.monotonic() + 120)
            if meter not in seen:
                samples.append({"meter": meter, "missed": True})
                continue
            await asyncio.sleep(pause)  # lets the tap's events arrive
            credit = tap.first_after("balance.changed.v1", account, posted - 1)
            start = posted if credit is None else stamp(credit[1]["at"])
            samples.append({"meter": meter, "start": start, "seen": seen[meter]})
    carried = collector_lines(cluster.scratch)
    for sample in samples:
        if not sample.get("missed"):
            sample["stages"] = stages(
                tap, carried, sample["meter"], sample["start"], sample["seen"]
            )
            sample["latency_s"] = round(sample["seen"] - sample["start"], 3)
    return samples


async def notifications(
    cluster: Cluster, tap: Tap, relays: Relays, accounts: list[str], *, pause: float
) -> list[dict[str, Any]]:
    """Cut each account, then pay it by a real signed provider notification to the gateway."""
    from simulator.payproviders import FakeProviders
    from simulator.payproviders.app import FakeOrder

    headers = {"X-Service-Credential": cluster.credential}
    async with httpx.AsyncClient(base_url=cluster.url("billing"), headers=headers) as api:
        for account in accounts:
            await refund(api, account, "cut")
    await relays.wait([a.removeprefix("ACC-") for a in accounts], "open", time.monotonic() + 300)
    fake = FakeProviders(cluster.keys)
    connection = await asyncpg.connect(cluster.dsn)
    now = datetime.now(UTC)
    held = []
    for index, account in enumerate(accounts):
        provider = "wechatpay" if index % 2 == 0 else "alipay"
        no = f"RL{index:06d}{secrets.token_hex(6)}"
        fen = int(STEP * 100)
        await connection.execute(
            "INSERT INTO payments_orders (out_trade_no, account_id, channel, provider, amount,"
            " status, operator, created_at, expires_at, pay_data, refunded_amount, queries,"
            " next_query_at) VALUES ($1, $2, $3, $4, $5, 'pending', 'bench', $6, $7, '{}', 0,"
            " 0, $8)",
            no,
            account,
            "wechat_native" if provider == "wechatpay" else "alipay_qr",
            provider,
            fen,  # Money is stored in fen (scaled integers)
            now,
            now + timedelta(hours=2),
            now + timedelta(days=1),
        )
        held.append((account, provider, no, fen))
    await connection.close()
    samples = []
    async with httpx.AsyncClient(base_url=cluster.url("gateway"), timeout=60) as public:
        for index, (account, provider, no, fen) in enumerate(held):
            meter = account.removeprefix("ACC-")
            order = FakeOrder(
                provider=provider,  # type: ignore[arg-type]
                out_trade_no=no,
                fen=fen,
                notify_url="",
                channel="native" if provider == "wechatpay" else "qr",
                state="SUCCESS",
                transaction_id=("4200" if provider == "wechatpay" else "2026") + f"{index:016d}",
                paid_fen=fen,
                paid_at=datetime.now(UTC).replace(microsecond=0),
            )
            notice_headers, body = fake.paid_notification(order)
            received = time.time()
            answer = await public.post(
                f"/api/v1/webhooks/{provider}", content=body, headers=notice_headers
            )
            answered = time.time()
            if answer.status_code not in (200, 204):
                raise RuntimeError(f"{provider} notification refused: {answer.status_code}")
            seen = await relays.wait([meter], "closed", time.monotonic() + 120)
            if meter not in seen:
                samples.append({"meter": meter, "missed": True})
                continue
            await asyncio.sleep(pause)
            samples.append(
                {
                    "meter": meter,
                    "provider": provider,
                    "start": received,
                    "seen": seen[meter],
                    "answered_s": round(answered - received, 3),
                }
            )
    carried = collector_lines(cluster.scratch)
    for sample in samples:
        if not sample.get("missed"):
            sample["stages"] = stages(
                tap, carried, sample["meter"], sample["start"], sample["seen"]
            )
            paid = tap.first_after(
                "payment.succeeded.v1", f"ACC-{sample['meter']}", sample["start"]
            )
            if paid is not None:
                sample["stages"]["payment_published"] = round(paid[0] - sample["start"], 3)
            sample["latency_s"] = round(sample["seen"] - sample["start"], 3)
    return samples


async def mass_event(
    cluster: Cluster,
    tap: Tap,
    relays: Relays,
    accounts: list[str],
    args: argparse.Namespace,
    *,
    action: str = "refund",
) -> dict[str, Any]:
    """Refund every account at once (``action="top_up"``: top every one up at the counter);
    time until the last relay is reported open (closed)."""
    headers = {"X-Service-Credential": cluster.credential}
    meters = [a.removeprefix("ACC-") for a in accounts]
    limit = asyncio.Semaphore(args.mass_concurrency)
    service, wanted = ("billing", "open") if action == "refund" else ("payments", "closed")
    began = time.time()
    async with httpx.AsyncClient(
        base_url=cluster.url(service), headers=headers, timeout=120
    ) as api:

        async def one(account: str) -> None:
            async with limit:
                if action == "refund":
                    await refund(api, account, "mass")
                else:
                    await top_up(api, account, "mass")

        posting = asyncio.gather(*(one(a) for a in accounts))
        seen_task = asyncio.create_task(relays.wait(meters, wanted, time.monotonic() + 900))
        await posting
        posted = time.time()
        seen = await seen_task
    await asyncio.sleep(1.0)
    crossings = []
    crossed: dict[str, float] = {}
    for account in accounts:
        # Its own move (a refund's notice can still be on its way when the top-ups begin).
        credit = tap.first_after("balance.changed.v1", account, began - 1, kind=action)
        if credit is not None:
            crossed[account.removeprefix("ACC-")] = stamp(credit[1]["at"])
            crossings.append(stamp(credit[1]["at"]))
    first, last = min(crossings), max(crossings)
    per_meter = [seen[m] - began for m in meters if m in seen]
    carried = collector_lines(cluster.scratch)
    # Each meter's path from its own crossing: where a mass event's commands wait.
    paths = [
        {"stages": stages(tap, carried, m, crossed[m], seen[m])}
        for m in meters
        if m in seen and m in crossed
    ]
    bus_ms, wait_ms = [], []
    for meter in meters:
        command = tap.first_after("command.request.v1", meter, began - 1)
        if command is not None and command[1]["command_id"] in carried:
            line = carried[command[1]["command_id"]]
            bus_ms.append(line["bus_ms"] / 1000)
            wait_ms.append(line["waited_ms"] / 1000)
    per_bus = args.mass // args.meters
    bound = bus_time_bound([args.meters] * per_bus, args.baud)
    last_open = max(seen.values()) if seen else float("nan")
    return {
        "accounts": len(accounts),
        "buses": per_bus,
        "left_behind": len(meters) - len(seen),
        f"{action}s_posted_s": round(posted - began, 2),
        "crossings_span_s": round(last - first, 2),
        f"first_crossing_to_last_{wanted}_s": round(last_open - first, 2),
        f"last_crossing_to_last_{wanted}_s": round(last_open - last, 2),
        "per_meter_from_first_request": spread(per_meter),
        "stages_from_own_crossing_s": stage_spread(paths),
        "collector_bus_s": spread(bus_ms),
        "collector_waited_s": spread(wait_ms),
        "bus_time_bound": bound,
        "over_bound_s": round(last_open - last - bound["bound_s"], 2),
    }


async def warm_up(relays: Relays, expected: int, deadline: float) -> float:
    began = time.monotonic()
    while time.monotonic() < deadline:
        if await relays.reported_count() >= expected:
            return time.monotonic() - began
        await asyncio.sleep(1.0)
    raise RuntimeError(f"fewer than {expected} relays reported before the deadline")


def summary(samples: list[dict[str, Any]], target: float) -> dict[str, Any]:
    timed = [s for s in samples if not s.get("missed")]
    latencies = [s["latency_s"] for s in timed]
    figures = spread(latencies)
    return {
        **figures,
        "missed": len(samples) - len(timed),
        "target_p99_s": target,
        "met": bool(latencies) and figures["p99_s"] < target and len(timed) == len(samples),
        "over_target": sum(1 for v in latencies if v >= target),
        "stages_s": stage_spread(timed),
        "samples": [{k: v for k, v in s.items() if k not in ("start", "seen")} for s in samples],
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"machine": machine(), "parameters": vars(args)}
    with tempfile.TemporaryDirectory(prefix="bench-relay-") as directory:
        scratch = Path(directory)
        cluster = Cluster(scratch, args)
        tap = Tap(cluster.prefix)
        relays = Relays(cluster.dsn)
        await cluster.create()
        try:
            field = await cluster.start_field()
            await cluster.start_services()
            meters = [m["id"] for dtu in field for m in dtu["meters"]]
            accounts = [f"ACC-{m}" for m in meters]
            results["seeding"] = await cluster.seed(field, accounts)
            print(f"seeded: {results['seeding']}", flush=True)
            await tap.start()
            await relays.start()
            results["warm_up_s"] = round(
                await warm_up(relays, len(meters), time.monotonic() + args.warm_up_deadline), 1
            )
            # One more cycle so that every loop is in its steady state.
            await asyncio.sleep(args.poll)
            cpu_before, began = cluster.cpu(), time.monotonic()
            load_before = os.getloadavg()
            chooser = random.Random(args.seed)
            mass = accounts[: args.mass]  # whole buses, the first DTUs
            others = accounts[args.mass :]
            chosen = chooser.sample(others, 2 * args.samples)
            singles_accounts, paid_accounts = chosen[: args.samples], chosen[args.samples :]
            opened = await singles(
                cluster, tap, relays, singles_accounts, action="refund", pause=args.pause
            )
            print("open done", flush=True)
            closed = await singles(
                cluster, tap, relays, singles_accounts, action="top_up", pause=args.pause
            )
            print("closed done", flush=True)
            paid = await notifications(cluster, tap, relays, paid_accounts, pause=args.pause)
            print("notifications done", flush=True)
            mass_figures = await mass_event(cluster, tap, relays, mass, args) if args.mass else {}
            print("mass done", flush=True)
            cpu_after, spent = cluster.cpu(), time.monotonic() - began
            results |= {
                "field": {
                    "dtus": args.dtus,
                    "meters_per_dtu": args.meters,
                    "meters_polled": len(meters),
                    "accounts_bound": len(accounts),
                    "baud": args.baud,
                    "poll_interval_s": args.poll,
                },
                "issue12_trip_line_to_relay_reported_open": summary(opened, 10.0),
                "issue12_top_up_credited_to_relay_reported_closed": summary(closed, 2.0),
                "issue11_paid_notification_to_relay_reported_closed": summary(paid, 2.0),
                "issue12_mass_event": mass_figures,
                "load_average_before_phases": load_before,
                "load_average_after_phases": os.getloadavg(),
                "cpu_share_during_phases": {
                    name: round((cpu_after[name] - cpu_before.get(name, 0)) / spent, 3)
                    for name in cpu_after
                },
            }
        except BaseException:
            for name in ("simulator", "collector", "billing", "control", "payments", "gateway"):
                cluster.show_log(name, 15)
            # The scratch directory goes with the run: keep the services' logs to read.
            kept = Path(args.output).with_name("relay-latency-logs")
            shutil.rmtree(kept, ignore_errors=True)
            shutil.copytree(scratch, kept, ignore=shutil.ignore_patterns("*.sock", "pg*"))
            print(f"the services' logs are kept in {kept}", file=sys.stderr)
            raise
        finally:
            await tap.close()
            await relays.close()
            await cluster.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="role")
    seeder = sub.add_parser("seed")
    seeder.add_argument("--database-url", required=True)
    seeder.add_argument("--meters-file", required=True)
    seeder.add_argument("--first", type=int, required=True)
    seeder.add_argument("--count", type=int, required=True)
    parser.add_argument("--dtus", type=int, default=1250)
    parser.add_argument("--meters", type=int, default=8, help="meters per DTU (per bus)")
    parser.add_argument("--baud", type=int, default=9600)
    parser.add_argument("--poll", type=float, default=5.0, help="collector poll interval, s")
    parser.add_argument("--samples", type=int, default=40, help="per single-account phase")
    parser.add_argument("--mass", type=int, default=1000, help="accounts in the mass event")
    parser.add_argument("--mass-concurrency", type=int, default=32)
    parser.add_argument("--pause", type=float, default=0.3, help="between samples, s")
    parser.add_argument("--warm-up-deadline", type=float, default=600.0)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--output", default=str(ROOT / "bench-results" / "relay-latency.json"))
    args = parser.parse_args()
    if args.role == "seed":
        asyncio.run(seed_role(args))
        return
    began = time.monotonic()
    write_results(args.output, asyncio.run(run(args)), began=began)


if __name__ == "__main__":
    main()
