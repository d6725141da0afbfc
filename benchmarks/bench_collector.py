"""Collector at field scale against the simulator (``make bench-collector``).

Side by side in one run, on loopback only, with the collector and the simulator in separate
processes so that each one's CPU is measured on its own (``/proc/<pid>`` and getrusage):

1. physical limit: 200 DTUs x 32 meters on 9600-baud buses (the simulator's timing model);
   the collector's reads/s over the field's maximum (one read per bus time on every bus);
2. today's way: a plain sequential pymodbus poller (one client per DTU, one DTU after the
   other) on the same field: meters read per minute, collector over poller;
3. overhead: the collector's CPU per read over a bare pymodbus client loop's on the same
   reads (one task per DTU, no decoding, no database);
4. with faults: 5 % silent meters, 1 % garbled replies (half CRC errors, half wrong-address
   answers), one DTU flapping every minute: healthy meters' freshness, how soon offline
   states appear, and whether any published energy is not one the meter really had;
5. city scale: 3,125 DTUs x 32 meters = 100,000 meters on a 3-minute cycle: the share of
   meters with a reading under 3 minutes old, sampled while it runs; CPU per read and memory
   per meter. Long: ``--city-minutes`` sets how long it is measured (10 for the record).

The collector runs as the product runs it, CollectorService with its database and bus:
PostgreSQL (``--database sqlite`` for the standalone file) and the in-process bus, so that
the figures are the collector's and not RabbitMQ's (the JSON says which). Freshness is
counted twice: published (a reading left the outbox for billing) and in state (the
collector's own meter table, what its API shows). Writes ``bench-results/collector.json``;
exits non-zero only on errors, never on a missed target. Cleans up its scratch directory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from benchkit import machine, write_results

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_DSN = os.environ.get(
    "PREPAID_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
PROFILE = "reference-prepaid"
STATS_EVERY = 2.0  # seconds between the roles' stats files
TARGETS = {
    "physical_ratio": 0.95,
    "city_fresh_share": 0.999,
    "overhead_ratio": 2.0,
    "healthy_fresh_share": 0.999,
}


# --- small helpers -------------------------------------------------------------------------
def write_json(path: str | Path, value: object) -> None:
    # Written to a temporary name and renamed, so a reader never sees half a file.
    temporary = Path(f"{path}.tmp")
    temporary.write_text(json.dumps(value))
    temporary.replace(path)


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def own_usage() -> dict[str, float]:
    """This process's CPU seconds (every thread) and resident memory."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    rss_kib = 0
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss_kib = int(line.split()[1])
    return {"cpu": usage.ru_utime + usage.ru_stime, "rss_bytes": rss_kib * 1024}


def raise_file_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def stats_loop(path: str, extra: Callable[[], Awaitable[dict[str, Any]]]) -> asyncio.Task[None]:
    """Write this role's usage and counters every STATS_EVERY seconds."""

    async def loop() -> None:
        while True:
            write_json(path, {"t": time.time(), **own_usage(), **(await extra())})
            await asyncio.sleep(STATS_EVERY)

    return asyncio.create_task(loop())


async def until_sigterm() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()


# --- the simulator role --------------------------------------------------------------------
async def simulator_role(args: argparse.Namespace) -> None:
    """The field, built from the simulator's own command line; stats and faults to files."""
    from simulator.__main__ import build, parse_args

    raise_file_limit()
    field = build(parse_args(args.sim_args.split()))
    async with field:
        unhealthy = sorted(
            {
                meter
                for dtu in field.dtus
                for meter in dtu.bus.faults
                if dtu.bus.faults[meter].silent
            }
            | {
                m.meter_id
                for dtu in field.dtus
                if dtu.faults.flap_every_seconds
                for m in dtu.meters
            }
        )
        write_json(
            args.out,
            {
                "started": time.time(),
                "dtus": [dtu.registration() for dtu in field.dtus],
                "silent": sorted(
                    m for dtu in field.dtus for m, f in dtu.bus.faults.items() if f.silent
                ),
                "flapping": [d.dtu_id for d in field.dtus if d.faults.flap_every_seconds],
                "unhealthy": unhealthy,
            },
        )

        async def counters() -> dict[str, Any]:
            totals: dict[str, int] = {}
            for dtu in field.dtus:
                for name, count in dtu.bus.counters.items():
                    totals[name] = totals.get(name, 0) + count
            return {"answered": sum(d.requests_answered for d in field.dtus), "bus": totals}

        stats = stats_loop(args.stats, counters)
        await until_sigterm()
        stats.cancel()
        final = {m.meter_id: round(m.energy_kwh(), 4) for m in field.meters}
        write_json(
            args.stats, {"t": time.time(), **own_usage(), **(await counters()), "final": final}
        )


# --- the collector role --------------------------------------------------------------------
async def collector_role(args: argparse.Namespace) -> None:
    """CollectorService on SQLite and the in-process bus; what it publishes is watched."""
    from collector.service import CollectorService
    from collector.tables import meters
    from prepaid_common.bus.memory import InProcessBus
    from prepaid_common.contracts import Envelope
    from prepaid_common.contracts.api.collector import DtuRegistration
    from prepaid_common.db import create_engine
    from sqlalchemy import func, select

    raise_file_limit()
    last_read: dict[str, float] = {}
    energies: dict[str, list[tuple[float, str]]] = {}
    status_events: list[tuple[float, str, bool]] = []
    reads = 0

    class WatchedBus(InProcessBus):
        async def publish(self, envelope: Envelope) -> None:
            self.watch(envelope)
            await super().publish(envelope)

        async def publish_many(self, envelopes: Sequence[Envelope]) -> None:
            for envelope in envelopes:
                self.watch(envelope)
            await super().publish_many(envelopes)

        def watch(self, envelope: Envelope) -> None:
            nonlocal reads
            if envelope.type == "reading.batch.v1":
                now = time.time()
                for reading in envelope.payload["readings"]:
                    reads += 1
                    meter = reading["meter_id"]
                    last_read[meter] = now
                    if args.keep_energies:
                        energies.setdefault(meter, []).append((now, str(reading["energy_kwh"])))
            elif envelope.type == "meter.status.v1":
                status_events.append(
                    (time.time(), envelope.payload["meter_id"], envelope.payload["online"])
                )

    field = read_json(args.field)
    unhealthy = set(field["unhealthy"])
    meter_ids = [m["id"] for dtu in field["dtus"] for m in dtu["meters"]]
    healthy_ids = [m for m in meter_ids if m not in unhealthy]
    engine = create_engine(args.database_url)
    bus = WatchedBus()
    service = CollectorService(
        engine=engine,
        bus=bus,
        poll_interval=args.poll_interval,
        request_timeout=args.request_timeout,
        listen_port=args.listen_port,
    )
    await service.migrate()
    service.register()
    baseline = own_usage()
    # Registered a few at a time: a city's 3,125 DTUs one by one take minutes.
    registering = asyncio.Semaphore(8)

    async def register(dtu: dict[str, Any]) -> None:
        async with registering:
            await service.register_dtu(DtuRegistration.model_validate(dtu))

    await asyncio.gather(*(register(dtu) for dtu in field["dtus"]))
    await bus.start()
    await service.start()
    started = time.time()
    # PREPAID_BENCH_PROFILE=file: a cProfile of the running collector (not its start-up).
    profile_path = os.environ.get("PREPAID_BENCH_PROFILE")
    profiler = None
    if profile_path:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()

    from prometheus_client import REGISTRY

    def polled(result: str) -> int:
        value = REGISTRY.get_sample_value("prepaid_collector_reads_total", {"result": result})
        return int(value or 0)

    offline_seen: dict[str, float] = {}

    async def state() -> dict[str, int]:
        """What the collector's own meter table (its API) says: fresh readings, offline meters."""
        since = datetime.now(UTC) - timedelta(seconds=args.fresh_seconds)
        fresh = select(func.count()).select_from(meters).where(meters.c.last_read_at > since)
        fresh_healthy = fresh.where(meters.c.id.not_in(unhealthy)) if unhealthy else fresh
        offline = select(meters.c.id).where(meters.c.online.is_(False))
        async with engine.connect() as connection:
            fresh_count = int((await connection.execute(fresh)).scalar_one())
            healthy_count = int((await connection.execute(fresh_healthy)).scalar_one())
            now = time.time()
            for (meter,) in await connection.execute(offline):
                offline_seen.setdefault(meter, now)
        return {
            "fresh_in_state": fresh_count,
            "fresh_healthy_in_state": healthy_count,
            "offline_in_state": len(offline_seen),
        }

    async def counters() -> dict[str, Any]:
        now = time.time()
        limit = now - args.fresh_seconds
        fresh = sum(1 for m in meter_ids if last_read.get(m, 0.0) > limit)
        fresh_healthy = sum(1 for m in healthy_ids if last_read.get(m, 0.0) > limit)
        return {
            # Successful meter polls, by the collector's own metric; published readings.
            "reads": polled("ok"),
            "failed_polls": sum(
                polled(r) for r in ("no_reply", "garbled", "exception", "implausible", "link_down")
            ),
            "published": reads,
            "meters": len(meter_ids),
            "fresh": fresh,
            **(await state()),
            "healthy": len(healthy_ids),
            "fresh_healthy": fresh_healthy,
            "baseline_rss_bytes": baseline["rss_bytes"],
            "started": started,
        }

    stats = stats_loop(args.stats, counters)
    await until_sigterm()
    stats.cancel()
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(profile_path)
    final = {
        "t": time.time(),
        **own_usage(),
        **(await counters()),
        "status_events": status_events,
        "offline_seen_in_state": offline_seen,
    }
    if args.keep_energies:
        final["energies"] = energies
    write_json(args.stats, final)
    await service.stop()
    await bus.close()
    await engine.dispose()


# --- plain pymodbus: a sequential poller and a bare concurrent loop ---------------------
async def pymodbus_role(args: argparse.Namespace) -> None:
    """Read every meter's blocks with plain pymodbus clients for ``--seconds``."""
    from pymodbus.client import AsyncModbusTcpClient
    from pymodbus.framer import FramerType

    raise_file_limit()
    field = read_json(args.field)
    blocks = [tuple(b) for b in json.loads(args.blocks)]
    clients = []
    for dtu in field["dtus"]:
        # A serial device server passes raw RTU frames: the client frames them itself.
        framer = FramerType.RTU if dtu.get("kind") == "rtu-over-tcp" else FramerType.SOCKET
        client = AsyncModbusTcpClient(
            dtu["host"], port=dtu["port"], framer=framer, timeout=1, retries=0
        )
        await client.connect()
        clients.append((client, [m["unit_id"] for m in dtu["meters"]]))
    reads = 0
    deadline = time.monotonic() + args.seconds

    async def read_meter(client: AsyncModbusTcpClient, unit: int) -> None:
        nonlocal reads
        for address, count in blocks:
            response = await client.read_holding_registers(address, count=count, device_id=unit)
            if response.isError():
                return
        reads += 1

    async def one_bus(client: AsyncModbusTcpClient, units: list[int]) -> None:
        while time.monotonic() < deadline:
            for unit in units:
                await read_meter(client, unit)

    before = own_usage()
    began = time.monotonic()
    if args.mode == "sequential":
        # Today's way: one DTU after the other, each meter in turn.
        while time.monotonic() < deadline:
            for client, units in clients:
                for unit in units:
                    if time.monotonic() >= deadline:
                        break
                    await read_meter(client, unit)
    else:
        await asyncio.gather(*(one_bus(client, units) for client, units in clients))
    elapsed = time.monotonic() - began
    after = own_usage()
    for client, _units in clients:
        client.close()
    write_json(args.out, {"reads": reads, "seconds": elapsed, "cpu": after["cpu"] - before["cpu"]})


# --- the orchestrator ----------------------------------------------------------------------
class Run:
    """Child processes and scratch files of one benchmark run; everything goes at the end."""

    def __init__(self, scratch: Path, database: str) -> None:
        self.scratch = scratch
        self.database = database
        self.children: list[subprocess.Popen[bytes]] = []
        self.pg_databases: list[str] = []

    async def database_url(self, name: str) -> str:
        """A fresh database for one scenario: a SQLite file, or a PostgreSQL database."""
        if self.database == "sqlite":
            return f"sqlite+aiosqlite:///{self.path(f'{name}.db')}"
        import asyncpg

        database = f"bench_collector_{self.scratch.name[-10:]}_{name}"
        admin = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await admin.execute(f'CREATE DATABASE "{database}"')
        finally:
            await admin.close()
        self.pg_databases.append(database)
        return (
            PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
            + f"/{database}"
        )

    async def drop_databases(self) -> None:
        import asyncpg

        for database in self.pg_databases:
            admin = await asyncpg.connect(PG_ADMIN_DSN)
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            finally:
                await admin.close()

    def spawn(self, *argv: str) -> subprocess.Popen[bytes]:
        env = os.environ | {"PREPAID_LOG_LEVEL": "WARNING"}
        # Each role's output goes to its own log, kept only while the run lasts.
        log = self.path(f"{argv[0]}-{len(self.children)}.log").open("wb")
        child = subprocess.Popen(
            [sys.executable, __file__, *argv], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        self.children.append(child)
        return child

    def show_logs(self, lines: int = 20) -> None:
        """Print the end of every role's log (after an error)."""
        for log in sorted(self.scratch.glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            print(f"--- {log.name}", *tail, sep="\n", file=sys.stderr)

    def path(self, name: str) -> Path:
        return self.scratch / name

    @staticmethod
    def stop(child: subprocess.Popen[bytes], timeout: float = 60) -> None:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()

    def close(self) -> None:
        for child in self.children:
            if child.poll() is None:
                child.kill()
                child.wait()
        for leftover in self.scratch.glob("*"):
            leftover.unlink()
        with contextlib.suppress(OSError):
            self.scratch.rmdir()


async def wait_file(path: Path, deadline_seconds: float, child: subprocess.Popen[bytes]) -> Any:
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        if await asyncio.to_thread(path.exists):
            return read_json(path)
        if child.poll() is not None:
            raise RuntimeError(f"{child.args!r} ended with {child.returncode} before {path.name}")
        await asyncio.sleep(0.2)
    raise TimeoutError(f"{path.name} did not appear within {deadline_seconds}s")


async def wait_until_stats(
    path: Path, probe: Callable[[dict[str, Any]], bool], seconds: float
) -> dict[str, Any]:
    """Wait for a stats file that passes ``probe`` (or the last one after ``seconds``)."""
    deadline = time.monotonic() + seconds
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
            last = read_json(path)
            if probe(last):
                return last
        await asyncio.sleep(0.5)
    return last


def profile_blocks() -> list[tuple[int, int]]:
    from collector.domain import plan_profile_reads
    from collector.profiles import load_profiles

    return [(b.address, b.count) for b in plan_profile_reads(load_profiles()[PROFILE])]


def field_max_reads_per_second(
    dtus: int, meters: int, line: Any, blocks: Sequence[tuple[int, int]]
) -> float:
    """One read per bus time on every bus: the physical ceiling of the field."""
    from simulator.timing import read_seconds

    return dtus / read_seconds(line, [count for _address, count in blocks])


TRANSPORT = "modbus-tcp"  # set from --transport by the orchestrator
# Client-mode DTUs dial the collector's listener here (one collector runs at a time).
LISTEN_PORT: int | None = None


def free_port() -> int:
    """A port nothing listens on now (the collector's listener takes it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def sim_argv(dtus: int, meters: int, *, baud: int, extra: Sequence[str] = ()) -> str:
    field = f"--dtus {dtus} --meters {meters} --profile-mix {PROFILE}=1 --baud {baud}"
    dial = [f"--target 127.0.0.1:{LISTEN_PORT}"] if LISTEN_PORT is not None else []
    return " ".join([field, f"--kind-mix {TRANSPORT}=1", *dial, *extra])


async def start_field(
    run: Run, name: str, argv: str
) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    sim = run.spawn(
        "simulator",
        "--sim-args",
        argv,
        "--out",
        str(run.path(f"{name}-field.json")),
        "--stats",
        str(run.path(f"{name}-sim-stats.json")),
    )
    field = await wait_file(run.path(f"{name}-field.json"), 300, sim)
    return sim, field


async def start_collector(
    run: Run, name: str, *, poll: float, timeout: float, fresh: float, keep: bool = False
) -> subprocess.Popen[bytes]:
    argv = [
        "collector",
        "--field",
        str(run.path(f"{name}-field.json")),
        "--database-url",
        await run.database_url(name),
        "--poll-interval",
        str(poll),
        "--request-timeout",
        str(timeout),
        "--fresh-seconds",
        str(fresh),
        "--stats",
        str(run.path(f"{name}-collector-stats.json")),
    ]
    if keep:
        argv.append("--keep-energies")
    if LISTEN_PORT is not None:
        argv += ["--listen-port", str(LISTEN_PORT)]
    return run.spawn(*argv)


def window(first: dict[str, Any], last: dict[str, Any]) -> dict[str, float]:
    seconds = last["t"] - first["t"]
    reads = last["reads"] - first["reads"]
    cpu = last["cpu"] - first["cpu"]
    published = last["published"] - first["published"]
    return {
        "seconds": round(seconds, 1),
        "reads": reads,
        "published_per_second": round(published / seconds, 1) if seconds else 0.0,
        "reads_per_second": round(reads / seconds, 1) if seconds else 0.0,
        "cpu_us_per_read": round(cpu / reads * 1e6, 1) if reads else 0.0,
        "cpu_share_of_one_core": round(cpu / seconds, 3) if seconds else 0.0,
    }


def sim_cpu_per_request(first: dict[str, Any], last: dict[str, Any]) -> float:
    answered = last["answered"] - first["answered"]
    return round((last["cpu"] - first["cpu"]) / answered * 1e6, 1) if answered else 0.0


async def measure_collector(
    run: Run, name: str, warmup: float, seconds: float
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Stats of collector and simulator at the start and the end of a measured window."""
    stats = run.path(f"{name}-collector-stats.json")
    sim_stats = run.path(f"{name}-sim-stats.json")
    await wait_until_stats(stats, lambda s: s.get("reads", 0) > 0, 600)
    await asyncio.sleep(warmup)
    first, sim_first = read_json(stats), read_json(sim_stats)
    await asyncio.sleep(seconds)
    last, sim_last = read_json(stats), read_json(sim_stats)
    return window(first, last) | {"first": first, "last": last}, sim_first, sim_last


async def physical(run: Run, args: argparse.Namespace) -> dict[str, Any]:
    """Physical limit, sequential pymodbus, bare pymodbus: one 9600-baud field."""
    from simulator.timing import SerialLine

    blocks = profile_blocks()
    dtus, meters = args.physical_dtus, 32
    line = SerialLine(baud=9600)
    ceiling = field_max_reads_per_second(dtus, meters, line, blocks)
    sim, _field = await start_field(run, "physical", sim_argv(dtus, meters, baud=9600))
    # Poll interval shorter than a bus cycle: every meter is always due, the bus never idles.
    collector = await start_collector(run, "physical", poll=1.0, timeout=1.0, fresh=60)
    measured, sim_first, sim_last = await measure_collector(
        run, "physical", args.warmup, args.seconds
    )
    run.stop(collector)
    result: dict[str, Any] = {
        "field": f"{dtus} DTUs x {meters} meters ({PROFILE}), 9600 baud 8N1, 30 ms turnaround",
        "reads_per_poll": blocks,
        "field_max_reads_per_second": round(ceiling, 1),
        "collector": {k: v for k, v in measured.items() if k not in ("first", "last")},
        "simulator_cpu_us_per_request": sim_cpu_per_request(sim_first, sim_last),
        "ratio": round(measured["reads_per_second"] / ceiling, 4),
    }
    print(f"physical: {result['collector']} ratio {result['ratio']}", flush=True)
    if TRANSPORT == "dtu-client":
        # pymodbus has no client for a socket the DTU opened: no plain poller to compare.
        result["plain"] = "not applicable: client-mode DTUs dial in; pymodbus cannot poll them"
    if args.no_plain or TRANSPORT == "dtu-client":
        run.stop(sim)
        return result
    for mode in ("sequential", "bare"):
        out = run.path(f"{mode}.json")
        child = run.spawn(
            "pymodbus",
            "--mode",
            mode,
            "--field",
            str(run.path("physical-field.json")),
            "--blocks",
            json.dumps(blocks),
            "--seconds",
            str(args.seconds),
            "--out",
            str(out),
        )
        sim_before = read_json(run.path("physical-sim-stats.json"))
        await asyncio.to_thread(child.wait, args.seconds + 120)
        sim_after = read_json(run.path("physical-sim-stats.json"))
        got = read_json(out)
        result[mode] = {
            "reads": got["reads"],
            "seconds": round(got["seconds"], 1),
            "meters_per_minute": round(got["reads"] / got["seconds"] * 60, 1),
            "cpu_us_per_read": round(got["cpu"] / got["reads"] * 1e6, 1) if got["reads"] else 0,
            "simulator_cpu_us_per_request": sim_cpu_per_request(sim_before, sim_after),
        }
        print(f"{mode} pymodbus: {result[mode]}", flush=True)
    run.stop(sim)
    collector_per_minute = measured["reads_per_second"] * 60
    result["versus_sequential"] = round(
        collector_per_minute / max(result["sequential"]["meters_per_minute"], 1e-9), 1
    )
    result["overhead_ratio"] = round(
        measured["cpu_us_per_read"] / max(result["bare"]["cpu_us_per_read"], 1e-9), 2
    )
    return result


async def faults(run: Run, args: argparse.Namespace) -> dict[str, Any]:
    """5 % silent, 1 % garbled, one DTU flapping every minute, on a shorter cycle."""
    dtus, meters, cycle = args.fault_dtus, 32, args.fault_cycle
    extra = [
        "--silent-share 0.05",
        "--crc-error-rate 0.005",
        "--wrong-address-rate 0.005",
        "--flapping-dtus 1",
        "--flap-every-seconds 60",
        "--flap-down-seconds 10",
        "--seed 7",
    ]
    sim, field = await start_field(run, "faults", sim_argv(dtus, meters, baud=9600, extra=extra))
    # Poll a little more often than the freshness limit so a read is never late by design.
    collector = await start_collector(
        run, "faults", poll=cycle * 0.9, timeout=1.0, fresh=cycle, keep=True
    )
    stats = run.path("faults-collector-stats.json")
    first = await wait_until_stats(stats, lambda s: s.get("reads", 0) > 0, 600)
    began = first["started"]
    samples: list[float] = []
    state_samples: list[float] = []
    end = time.monotonic() + args.fault_seconds
    await asyncio.sleep(cycle * 1.2)  # the first cycle reads every meter once
    while time.monotonic() < end:
        current = read_json(stats)
        samples.append(current["fresh_healthy"] / current["healthy"])
        state_samples.append(current["fresh_healthy_in_state"] / current["healthy"])
        await asyncio.sleep(STATS_EVERY)
    run.stop(collector)
    run.stop(sim)
    final = read_json(stats)
    sim_final = read_json(run.path("faults-sim-stats.json"))
    silent = set(field["silent"])
    flapping_meters = {
        m["id"] for d in field["dtus"] if d["id"] in field["flapping"] for m in d["meters"]
    }
    offline_at: dict[str, float] = {}
    for at, meter, online in final["status_events"]:
        if not online and meter not in offline_at:
            offline_at[meter] = at
    first_drop = field["started"] + 60 - 10

    def delays(seen: dict[str, float], meters: set[str], since: float) -> tuple[list[float], str]:
        found = sorted(seen[m] - since for m in meters if m in seen)
        return found, f"{len(found)}/{len(meters)}"

    # The meter.status.v1 events the collector published. (Its table cannot tell: a meter
    # never read is offline there from the moment it is registered.)
    silent_delays, silent_count = delays(offline_at, silent, began)
    flap_delays, flap_count = delays(offline_at, flapping_meters, first_drop)
    garbled = check_published(final["energies"], sim_final["final"], silent)
    result = {
        "field": f"{dtus} DTUs x {meters} meters, 9600 baud; cycle {cycle}s (poll {cycle * 0.9}s)",
        "seconds": args.fault_seconds,
        "silent_meters": len(silent),
        "flapping_dtus": field["flapping"],
        "simulator_faults": sim_final["bus"],
        "healthy_fresh_share_min": share(min, samples),
        "healthy_fresh_share_mean": share(mean, samples),
        "healthy_fresh_in_state_share_min": share(min, state_samples),
        "healthy_fresh_in_state_share_mean": share(mean, state_samples),
        "silent_offline_published": silent_count,
        "silent_offline_seconds_after_start_max": last_of(silent_delays),
        "flapping_offline_published": flap_count,
        "flapping_offline_seconds_after_first_drop_max": last_of(flap_delays),
        "offline_within_two_cycles": len(silent_delays) == len(silent)
        and len(flap_delays) == len(flapping_meters)
        and max([*silent_delays, *flap_delays], default=0.0) <= 2 * cycle,
        "published_values_not_the_meters": garbled,
    }
    print(f"faults: {result}", flush=True)
    return result


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def share(summary: Callable[[Sequence[float]], float], values: Sequence[float]) -> float | None:
    return round(summary(values), 5) if values else None


def last_of(delays: Sequence[float]) -> float | None:
    return round(delays[-1], 1) if delays else None


def check_published(
    energies: dict[str, list[tuple[float, str]]], final: dict[str, float], silent: set[str]
) -> dict[str, int]:
    """Count published energies no real meter state explains: a register that goes backwards,
    jumps faster than any load could, or lies above the meter's final value."""
    max_kw = 10.0  # the simulated loads stay under 5 kW x 1.5 peak factor x 1.15 jitter
    wrong = backwards = 0
    for meter, series in energies.items():
        previous: tuple[float, Decimal] | None = None
        for at, text in series:
            value = Decimal(text)
            if Decimal(str(final[meter])) + Decimal("0.01") < value:
                wrong += 1
            if previous is not None:
                step = value - previous[1]
                allowed = Decimal(str(max_kw * (at - previous[0]) / 3600)) + Decimal("0.02")
                if step < 0:
                    backwards += 1
                elif step > allowed:
                    wrong += 1
            previous = (at, value)
    return {
        "above_final_or_impossible_jump": wrong,
        "backwards": backwards,
        "from_silent_meters": sum(len(energies.get(m, [])) for m in silent),
    }


async def city(run: Run, args: argparse.Namespace) -> dict[str, Any]:
    """100,000 meters on a 3-minute cycle: freshness, CPU per read, memory per meter."""
    dtus, meters, cycle = args.city_dtus, 32, args.city_cycle
    sim, _field = await start_field(run, "city", sim_argv(dtus, meters, baud=9600))
    collector = await start_collector(run, "city", poll=cycle * 0.9, timeout=1.0, fresh=cycle)
    stats = run.path("city-collector-stats.json")
    first = await wait_until_stats(stats, lambda s: s.get("reads", 0) > 0, 900)
    registered_rss = first["rss_bytes"]
    # Sustained freshness: measured from one full cycle after the start, or from when every
    # meter has been read once if that comes later (client-mode DTUs first have to dial
    # in); how long that took is reported.
    await asyncio.sleep(max(0.0, first["started"] + cycle * 1.05 - time.time()))
    all_read = await wait_until_stats(stats, lambda s: s["fresh"] >= s["meters"], 2 * cycle)
    start, sim_start = read_json(stats), read_json(run.path("city-sim-stats.json"))
    samples: list[float] = []
    state_samples: list[float] = []
    began = time.monotonic()
    end = began + args.city_minutes * 60
    while time.monotonic() < end:
        current = read_json(stats)
        samples.append(current["fresh"] / current["meters"])
        state_samples.append(current["fresh_in_state"] / current["meters"])
        await asyncio.sleep(STATS_EVERY * 2.5)
    last, sim_last = read_json(stats), read_json(run.path("city-sim-stats.json"))
    run.stop(collector)
    run.stop(sim)
    measured = window(start, last)
    result = {
        "field": f"{dtus} DTUs x {meters} meters = {dtus * meters}, 9600 baud",
        "cycle_seconds": cycle,
        "poll_interval_seconds": cycle * 0.9,
        "measured_minutes": args.city_minutes,
        # Published: a reading (in a reading.batch.v1) left the outbox for billing within the limit.
        "fresh_share_min": share(min, samples),
        "fresh_share_mean": share(mean, samples),
        # In state: the collector's own meter table (its API) has a reading that recent.
        "fresh_in_state_share_min": share(min, state_samples),
        "fresh_in_state_share_mean": share(mean, state_samples),
        "samples": len(samples),
        "sample_every_seconds": STATS_EVERY * 2.5,
        # Each sample's published share, in order: when a dip came, not only how deep.
        "fresh_share_series": [round(sample, 5) for sample in samples],
        "every_meter_read_after_seconds": (
            round(all_read["t"] - first["started"], 1)
            if all_read.get("fresh", 0) >= all_read.get("meters", 1)
            else None
        ),
        "collector": measured,
        "memory_per_meter_bytes": round(
            (last["rss_bytes"] - last["baseline_rss_bytes"]) / (dtus * meters)
        ),
        "collector_rss_mib": round(last["rss_bytes"] / 2**20, 1),
        "rss_after_registration_mib": round(registered_rss / 2**20, 1),
        "simulator_cpu_us_per_request": sim_cpu_per_request(sim_start, sim_last),
        "simulator_rss_mib": round(sim_last["rss_bytes"] / 2**20, 1),
    }
    print(f"city: {result}", flush=True)
    return result


def revision() -> dict[str, Any]:
    """The commit measured, and whether the collector's files differed from it."""

    def git(*argv: str) -> str:
        done = subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip()

    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "collector_uncommitted_files": len(
            git("status", "--porcelain", "services/collector", "libs").splitlines()
        ),
    }


async def orchestrate(args: argparse.Namespace) -> dict[str, Any]:
    scratch = ROOT / "bench-results" / f"tmp-collector-{uuid.uuid4().hex[:10]}"
    scratch.mkdir(parents=True, exist_ok=True)
    run = Run(scratch, args.database)
    database = "SQLite (WAL)" if args.database == "sqlite" else "PostgreSQL"
    results: dict[str, Any] = {
        "collector_setup": f"CollectorService, {database} + in-process bus, own process",
        "transport": TRANSPORT,
        "database": args.database,
    }
    try:
        if "physical" in args.only:
            results["physical"] = await physical(run, args)
        if "faults" in args.only:
            results["faults"] = await faults(run, args)
        if "city" in args.only:
            results["city"] = await city(run, args)
    except BaseException:
        run.show_logs()
        raise
    finally:
        run.close()
        await run.drop_databases()
    return results


def targets_met(results: dict[str, Any]) -> dict[str, bool]:
    met: dict[str, bool] = {}
    if "physical" in results:
        physical = results["physical"]
        met["physical_ratio"] = physical["ratio"] >= TARGETS["physical_ratio"]
        if "overhead_ratio" in physical:  # not with --no-plain
            met["overhead_ratio"] = physical["overhead_ratio"] <= TARGETS["overhead_ratio"]
    if "city" in results and results["city"]["fresh_share_min"] is not None:
        city = results["city"]
        met["city_fresh_share"] = city["fresh_share_min"] >= TARGETS["city_fresh_share"]
        met["city_fresh_in_state_share"] = (
            city["fresh_in_state_share_min"] >= TARGETS["city_fresh_share"]
        )
    if "faults" in results and results["faults"]["healthy_fresh_share_min"] is not None:
        faults = results["faults"]
        met["healthy_fresh_share"] = (
            faults["healthy_fresh_share_min"] >= TARGETS["healthy_fresh_share"]
        )
        met["healthy_fresh_in_state_share"] = (
            faults["healthy_fresh_in_state_share_min"] >= TARGETS["healthy_fresh_share"]
        )
        met["offline_within_two_cycles"] = faults["offline_within_two_cycles"]
        met["no_garbled_value_published"] = not any(
            faults["published_values_not_the_meters"].values()
        )
    return met


def main() -> int:
    # A benchmark is a development run: the services take their development defaults.
    os.environ.setdefault("PREPAID_ENVIRONMENT", "development")
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    sub = parser.add_subparsers(dest="role")
    sim = sub.add_parser("simulator")
    sim.add_argument("--sim-args", required=True)
    sim.add_argument("--out", required=True)
    sim.add_argument("--stats", required=True)
    col = sub.add_parser("collector")
    col.add_argument("--field", required=True)
    col.add_argument("--database-url", required=True)
    col.add_argument("--poll-interval", type=float, required=True)
    col.add_argument("--request-timeout", type=float, required=True)
    col.add_argument("--fresh-seconds", type=float, required=True)
    col.add_argument("--stats", required=True)
    col.add_argument("--keep-energies", action="store_true")
    col.add_argument("--listen-port", type=int, default=None, help="for client-mode DTUs")
    plain = sub.add_parser("pymodbus")
    plain.add_argument("--mode", choices=("sequential", "bare"), required=True)
    plain.add_argument("--field", required=True)
    plain.add_argument("--blocks", required=True)
    plain.add_argument("--seconds", type=float, required=True)
    plain.add_argument("--out", required=True)
    parser.add_argument(
        "--only", default="physical,faults,city", help="comma-separated: physical,faults,city"
    )
    parser.add_argument(
        "--database",
        choices=("sqlite", "postgres"),
        default="postgres",
        help="the collector's database (PostgreSQL on 127.0.0.1:5432)",
    )
    parser.add_argument(
        "--transport",
        choices=("modbus-tcp", "rtu-over-tcp", "dtu-client"),
        default="modbus-tcp",
        help="the DTUs: Modbus TCP gateways, serial device servers (raw RTU over TCP), or "
        "client-mode DTUs dialling the collector's listener (no plain pymodbus runs then)",
    )
    parser.add_argument("--physical-dtus", type=int, default=200)
    parser.add_argument(
        "--no-plain", action="store_true", help="skip the plain pymodbus runs (for tuning)"
    )
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds before measuring")
    parser.add_argument("--seconds", type=float, default=30.0, help="physical-limit window")
    parser.add_argument("--fault-dtus", type=int, default=100)
    parser.add_argument("--fault-cycle", type=float, default=30.0, help="freshness limit, s")
    parser.add_argument("--fault-seconds", type=float, default=150.0)
    parser.add_argument("--city-dtus", type=int, default=3125)
    parser.add_argument("--city-cycle", type=float, default=180.0, help="freshness limit, s")
    parser.add_argument("--city-minutes", type=float, default=10.0, help="measured minutes")
    parser.add_argument("--output", default=str(ROOT / "bench-results" / "collector.json"))
    args = parser.parse_args()
    if args.role == "simulator":
        asyncio.run(simulator_role(args))
        return 0
    if args.role == "collector":
        asyncio.run(collector_role(args))
        return 0
    if args.role == "pymodbus":
        asyncio.run(pymodbus_role(args))
        return 0
    args.only = set(args.only.split(","))
    global TRANSPORT, LISTEN_PORT
    TRANSPORT = args.transport
    if TRANSPORT == "dtu-client":
        LISTEN_PORT = free_port()
    began = time.monotonic()
    measured = revision()  # before the run: others may commit while it lasts
    results = asyncio.run(orchestrate(args))
    results |= {
        "targets": TARGETS,
        "met": targets_met(results),
        "machine": machine(),
        "revision": measured,
    }
    write_results(args.output, results, began=began)
    return 0


if __name__ == "__main__":
    sys.exit(main())
