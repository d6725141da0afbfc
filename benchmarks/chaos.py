"""The cluster under faults: nothing lost, nothing doubled, every service back by itself.

Starts a PostgreSQL and a RabbitMQ of its own (data under a temporary directory, free ports,
its own node name: the shared instances are never touched), the field simulator and every
service as its own process (cluster mode, like deploy/run-cluster.sh), loads the demo data
through the public API, then for ``--minutes``:

- sends top-ups through the API, each with its own receipt, retried with the same receipt on
  any error or timeout until acknowledged (201/200), and records every acknowledged one;
- injects faults in a seeded random order: ``kill -9`` of each service (restarted as a
  supervisor would), RabbitMQ restarted, PostgreSQL restarted or killed with its postmaster,
  and the targeted ones of issue 10: PostgreSQL down while billing holds a message, a backlog
  drained during a database blink, a service started while a dependency is down;
- measures each fault's recovery: until the API answers, a new top-up is credited and a
  reading is billed after the fault.

Then it quiesces (load stopped, the field frozen, queues and outboxes drained) and checks the
invariants straight in the private database and broker. Writes bench-results/chaos.json,
prints a summary, exits 1 if an invariant fails. Every process it started is stopped on the
way out, Ctrl-C included.

    make chaos                                   # 20 minutes of faults
    make chaos CHAOS_ARGS="--quick --seed 7"     # a smoke run of about 3 minutes
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import glob
import json
import os
import pwd
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from benchkit import machine, write_results

ROOT = Path(__file__).resolve().parent.parent
OUT = Path("bench-results/chaos.json")
# Where the services' packages live: put first on the children's path, so that the code run
# is the code of the tree this harness belongs to (a worktree too), not the editable install.
SOURCE_DIRS = [
    "libs",
    "services/collector",
    "services/billing",
    "services/control",
    "services/payments",
    "services/api-gateway",
    "services/simulator",
    "services/standalone",
]
SERVICES = ("collector", "billing", "control", "payments", "gateway")
DEMO_PRICE = Decimal("1.5000")  # standalone.seed's flat price
# Ports no free-port pick may take: the shared instances and rabbitmqctl's own range.
RESERVED_PORTS = {4369, 5432, 5672, 8000, 8101, 8102, 8103, 8104, 9502, 15672, 25672}
RESERVED_PORTS |= set(range(35672, 35683))
FAULT_KINDS = (
    "kill:collector",
    "kill:billing",
    "kill:control",
    "kill:payments",
    "kill:gateway",
    "rabbitmq-restart",
    "postgres-restart",
    "postgres-kill",
    "pg-down-message-in-hand",
    "backlog-drain-db-blink",
    "start-while-pg-down",
    "start-while-broker-down",
)
# --quick runs these first: the targeted faults, then one of each kind of restart.
QUICK_ORDER = (
    "pg-down-message-in-hand",
    "kill:billing",
    "start-while-pg-down",
    "postgres-kill",
    "backlog-drain-db-blink",
    "rabbitmq-restart",
    "start-while-broker-down",
    "kill:payments",
    "kill:gateway",
    "kill:collector",
    "kill:control",
    "postgres-restart",
)
# A fault not recovered from within this is a failure (--quick: a third of it).
RECOVERY_BOUND_SECONDS = 180.0
TOP_UP_GIVE_UP_SECONDS = 300.0


def log(message: str) -> None:
    """Print a progress line with the time (the run is long; a person watches it)."""
    print(f"{datetime.now(UTC).strftime('%H:%M:%S')} chaos: {message}", flush=True)


def free_port(taken: set[int]) -> int:
    """A port nothing listens on now, outside the reserved ones and those already picked."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
        if port not in RESERVED_PORTS and port not in taken:
            taken.add(port)
            return port
    raise RuntimeError("no free port found")


def free_port_block(count: int, taken: set[int], rng: random.Random) -> int:
    """The first of ``count`` consecutive free ports (the simulator's DTUs take a block)."""
    for _ in range(200):
        base = rng.randrange(20000, 30000 - count)
        block = set(range(base, base + count))
        if block & (RESERVED_PORTS | taken):
            continue
        try:
            for port in block:
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        taken |= block
        return base
    raise RuntimeError(f"no block of {count} free ports found")


def commit_of_tree() -> str:
    """HEAD of the tree being run, marked when the working tree has changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}{' (with uncommitted changes)' if dirty else ''}"


# --- processes ----------------------------------------------------------------------------


class Proc:
    """A child in its own process group (signals reach it and everything it started)."""

    every: list[Proc] = []  # noqa: RUF012 - the registry the last-resort cleanup walks

    def __init__(
        self,
        name: str,
        argv: list[str],
        *,
        env: dict[str, str],
        log_path: Path,
        user: str | None = None,
    ) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = log_path
        self.user = user
        self.popen: subprocess.Popen[bytes] | None = None
        self.starts = 0
        Proc.every.append(self)

    def start(self) -> None:
        """Start (again), appending to the process's log."""
        with self.log_path.open("ab") as output:
            self.popen = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                user=self.user,
            )
        self.starts += 1

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def exit_code(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def signal_group(self, sig: signal.Signals) -> None:
        """Send a signal to the process group (nothing if it is gone)."""
        if self.popen is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, sig)

    def signal_leader(self, sig: signal.Signals) -> None:
        """Send a signal to the process alone (PostgreSQL's postmaster for a fast stop)."""
        if self.popen is not None and self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.popen.pid, sig)

    async def wait_exit(self, timeout: float) -> bool:
        """Wait until the process has exited; False on timeout."""
        if self.popen is None:
            return True
        try:
            await asyncio.to_thread(self.popen.wait, timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    async def kill9(self) -> None:
        """``kill -9`` the process group and reap it."""
        self.signal_group(signal.SIGKILL)
        await self.wait_exit(10)

    async def stop(self, timeout: float = 15) -> None:
        """SIGTERM, then SIGKILL after ``timeout``."""
        self.signal_group(signal.SIGCONT)
        self.signal_group(signal.SIGTERM)
        if not await self.wait_exit(timeout):
            await self.kill9()

    def stop_now(self) -> None:
        """Stop without an event loop (the last-resort cleanup)."""
        if self.popen is None:
            return
        self.signal_group(signal.SIGCONT)
        self.signal_group(signal.SIGTERM)
        try:
            self.popen.wait(5)
        except subprocess.TimeoutExpired:
            self.signal_group(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(5)
        # Children of the group may outlive a leader that exited at once.
        self.signal_group(signal.SIGKILL)


async def run_command(argv: list[str], *, env: dict[str, str], timeout: float) -> tuple[int, str]:
    """Run a short command; its status and output (status -1 on timeout)."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        return -1, "timed out"
    return process.returncode or 0, output.decode(errors="replace")


async def port_open(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:port."""
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 2)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


class Postgres:
    """A private PostgreSQL: its own data directory, port and socket directory, trust auth."""

    def __init__(self, root: Path, port: int) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        bindir = Path(found[-1]) if found else Path(shutil.which("pg_ctl") or "pg_ctl").parent
        self.bindir = bindir
        self.root = root
        self.data = root / "data"
        self.port = port
        # PostgreSQL refuses to run as root: run it as the postgres user then.
        self.user = "postgres" if os.geteuid() == 0 else None
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}
        self.env = env
        self.proc = Proc(
            "postgres",
            [
                str(bindir / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={root}",
                "-c",
                "max_connections=300",
                "-c",
                "shared_buffers=64MB",
            ],
            env=env,
            log_path=root / "postgres.log",
            user=self.user,
        )

    def init(self) -> None:
        """Create the cluster (trust authentication, loopback only)."""
        self.root.mkdir(parents=True, exist_ok=True)
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        subprocess.run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            env=self.env,
            cwd="/",
            user=self.user,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    async def start(self) -> None:
        """Start the postmaster and wait until it takes connections."""
        self.proc.start()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, asyncpg.PostgresError, TimeoutError):
                connection = await asyncpg.connect(
                    host="127.0.0.1",
                    port=self.port,
                    user="postgres",
                    database="postgres",
                    timeout=2,
                )
                await connection.close()
                return
            if not self.proc.alive():
                raise RuntimeError(f"PostgreSQL exited: see {self.proc.log_path}")
            await asyncio.sleep(0.2)
        raise RuntimeError("PostgreSQL did not start within 120 s")

    async def stop_fast(self) -> None:
        """Fast shutdown (SIGINT to the postmaster): sessions end, the data is clean."""
        self.proc.signal_leader(signal.SIGINT)
        if not await self.proc.wait_exit(30):
            await self.proc.kill9()

    async def kill(self) -> None:
        """``kill -9`` the postmaster and every backend: the next start recovers from WAL."""
        await self.proc.kill9()

    async def create_database(self, name: str) -> None:
        connection = await asyncpg.connect(
            host="127.0.0.1", port=self.port, user="postgres", database="postgres"
        )
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()


class Rabbit:
    """A private RabbitMQ node: its own name, ports, data, logs, cookie and no plugins."""

    def __init__(self, root: Path, *, node: str, port: int, dist_port: int) -> None:
        bin_dir = Path("/usr/lib/rabbitmq/bin")
        # The /usr/sbin wrappers switch to the rabbitmq user and drop this environment.
        server = bin_dir / "rabbitmq-server"
        ctl = bin_dir / "rabbitmqctl"
        self.server = str(server) if server.exists() else shutil.which("rabbitmq-server") or ""
        self.ctl = str(ctl) if ctl.exists() else shutil.which("rabbitmqctl") or ""
        self.root = root
        self.node = node
        self.port = port
        for sub in ("home", "mnesia", "log"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        (root / "env.conf").write_text("ERL_EPMD_ADDRESS=127.0.0.1\n")
        (root / "rabbitmq.conf").write_text("loopback_users.guest = true\n")
        (root / "enabled_plugins").write_text("[].\n")
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(root / "home"),  # the Erlang cookie the server and rabbitmqctl share
            "LC_ALL": "C.UTF-8",
            "RABBITMQ_CONF_ENV_FILE": str(root / "env.conf"),
            "RABBITMQ_NODENAME": node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(port),
            "RABBITMQ_DIST_PORT": str(dist_port),
            "RABBITMQ_MNESIA_BASE": str(root / "mnesia"),
            "RABBITMQ_LOG_BASE": str(root / "log"),
            "RABBITMQ_CONFIG_FILE": str(root / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(root / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(root / "rabbit.pid"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_FLAGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }
        self.proc = Proc("rabbitmq", [self.server], env=self.env, log_path=root / "server.log")

    async def ctl_run(self, *args: str, timeout: float = 60) -> tuple[int, str]:
        """``rabbitmqctl -n <node> ...`` against this node only."""
        return await run_command(
            [self.ctl, "-q", "-n", self.node, *args], env=self.env, timeout=timeout
        )

    async def start(self) -> None:
        """Start the node and wait until it has booted and listens."""
        self.proc.start()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if await port_open(self.port):
                status, output = await self.ctl_run("await_startup", "--timeout", "60", timeout=70)
                if status == 0:
                    return
                raise RuntimeError(f"RabbitMQ did not finish booting: {output[-500:]}")
            if not self.proc.alive():
                raise RuntimeError(f"RabbitMQ exited: see {self.proc.log_path}")
            await asyncio.sleep(0.5)
        raise RuntimeError("RabbitMQ did not listen within 120 s")

    async def stop(self) -> None:
        """Stop the node the orderly way, then make sure its processes are gone."""
        await self.ctl_run("stop", timeout=60)
        if not await self.proc.wait_exit(30):
            await self.proc.kill9()
        self.proc.signal_group(signal.SIGKILL)

    async def kill(self) -> None:
        """``kill -9`` the node (quorum queues recover from their logs)."""
        await self.proc.kill9()

    async def queues(self) -> list[dict[str, Any]]:
        """Every queue with its ready and unacknowledged message counts."""
        status, output = await self.ctl_run(
            "list_queues",
            "name",
            "messages_ready",
            "messages_unacknowledged",
            "--formatter",
            "json",
            timeout=60,
        )
        if status != 0:
            raise RuntimeError(f"list_queues failed: {output[-300:]}")
        start = output.find("[")
        listing: list[dict[str, Any]] = json.loads(output[start:]) if start >= 0 else []
        return listing


# --- the cluster --------------------------------------------------------------------------


@dataclass
class Cluster:
    """The private infrastructure, the simulator and the five services, supervised."""

    workdir: Path
    pg: Postgres
    rabbit: Rabbit
    simulator: Proc
    services: dict[str, Proc]
    ports: dict[str, int]
    admin_password: str
    held: set[str] = field(default_factory=set)  # not restarted by the supervisor now
    unexpected_exits: list[dict[str, Any]] = field(default_factory=list)
    began: float = field(default_factory=time.monotonic)

    def clock(self) -> float:
        """Seconds since the run began (the report's time axis)."""
        return round(time.monotonic() - self.began, 2)

    @property
    def database_url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.pg.port}/prepaid"

    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['gateway']}"

    async def healthy(self, name: str) -> bool:
        """Whether a service is ready (/readyz, else /healthz where it has no such probe)."""
        try:
            async with httpx.AsyncClient(trust_env=False, timeout=2) as client:
                base = f"http://127.0.0.1:{self.ports[name]}"
                response = await client.get(f"{base}/readyz")
                if response.status_code == 404:
                    response = await client.get(f"{base}/healthz")
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def wait_healthy(self, name: str, timeout: float) -> float | None:
        """Seconds until a service answers /healthz (None: not within ``timeout``)."""
        began = time.monotonic()
        while time.monotonic() - began < timeout:
            if await self.healthy(name):
                return round(time.monotonic() - began, 2)
            await asyncio.sleep(0.25)
        return None

    async def supervise(self, stop: asyncio.Event) -> None:
        """Restart a service that exited on its own (as systemd or Kubernetes would); note it."""
        while not stop.is_set():
            for name, proc in self.services.items():
                if name in self.held or proc.alive() or proc.popen is None:
                    continue
                self.unexpected_exits.append(
                    {"service": name, "exit_code": proc.exit_code(), "at_s": self.clock()}
                )
                log(f"{name} exited on its own (status {proc.exit_code()}); restarting it")
                await asyncio.sleep(1)
                proc.start()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)

    async def db(self) -> asyncpg.Connection:
        return await asyncpg.connect(
            host="127.0.0.1", port=self.pg.port, user="postgres", database="prepaid", timeout=3
        )

    async def db_value(self, query: str, *args: Any) -> Any:
        """One value from the private database (None while it is unreachable)."""
        try:
            connection = await self.db()
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return None
        try:
            return await connection.fetchval(query, *args, timeout=5)
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return None
        finally:
            with contextlib.suppress(Exception):
                await connection.close(timeout=2)


def build_cluster(workdir: Path, args: argparse.Namespace, rng: random.Random) -> Cluster:
    """Lay out the private instances, the simulator and the services (nothing started yet)."""
    taken: set[int] = set()
    ports = {name: free_port(taken) for name in (*SERVICES, "listener", "pg", "amqp", "dist")}
    sim_base = free_port_block(args.dtus, taken, rng)
    ports["simulator"] = sim_base
    pg = Postgres(workdir / "pg", ports["pg"])
    rabbit = Rabbit(
        workdir / "rabbit",
        node=f"prepaid-chaos-{os.getpid()}@localhost",
        port=ports["amqp"],
        dist_port=ports["dist"],
    )
    python = str(ROOT / ".venv" / "bin" / "python")
    if not Path(python).exists():
        python = sys.executable
    admin_password = f"chaos-{rng.randrange(10**12)}"
    # Production settings (the default where a service has one): real secrets, sealed commands.
    key_file = workdir / "command-master-keys"
    key_file.write_text(f"1 {secrets.token_hex(16)}\n")
    key_file.chmod(0o644)
    # Only what the services need: nothing of this shell's PREPAID_* may point them elsewhere.
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("PREPAID_", "RABBITMQ_"))}
    base_env |= {
        "PYTHONPATH": os.pathsep.join(str(ROOT / d) for d in SOURCE_DIRS),
        "NO_PROXY": "127.0.0.1,localhost",
        "PREPAID_DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:{ports['pg']}/prepaid",
        "PREPAID_AMQP_URL": f"amqp://guest:guest@127.0.0.1:{ports['amqp']}/",
        "PREPAID_LOG_FORMAT": "text",
        "PREPAID_LISTEN_HOST": "127.0.0.1",  # where a service reads it: loopback only
        "PREPAID_ADMIN_PASSWORD": admin_password,
        "PREPAID_TOKEN_SECRET": secrets.token_urlsafe(32),
        "PREPAID_SERVICE_CREDENTIAL": secrets.token_urlsafe(32),
        "PREPAID_COMMAND_MASTER_KEY_FILE": str(key_file),
    }
    logs = workdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    simulator = Proc(
        "simulator",
        [
            python,
            "-m",
            "simulator",
            "--dtus",
            str(args.dtus),
            "--meters",
            str(args.meters),
            "--base-port",
            str(sim_base),
            "--speed",
            str(args.speed),
            "--seed",
            str(args.seed),
        ],
        env=base_env,
        log_path=logs / "simulator.log",
    )
    services: dict[str, Proc] = {}
    for name in SERVICES:
        env = dict(base_env)
        if name == "gateway":
            env["PREPAID_HTTP_PORT"] = str(ports["gateway"])
            for upstream in ("collector", "billing", "control", "payments"):
                env[f"PREPAID_{upstream.upper()}_URL"] = f"http://127.0.0.1:{ports[upstream]}"
        else:
            env["PREPAID_SERVICE_PORT"] = str(ports[name])
        if name == "collector":
            env["PREPAID_COLLECTOR_LISTEN_HOST"] = "127.0.0.1"
            env["PREPAID_COLLECTOR_LISTEN_PORT"] = str(ports["listener"])
            env["PREPAID_COLLECTOR_INSTANCE"] = "chaos"
        services[name] = Proc(name, [python, "-m", name], env=env, log_path=logs / f"{name}.log")
    return Cluster(workdir, pg, rabbit, simulator, services, ports, admin_password)


async def start_cluster(cluster: Cluster, args: argparse.Namespace) -> list[str]:
    """Start everything, load the demo data; return the low-credit accounts."""
    log(
        f"private PostgreSQL on {cluster.pg.port}, RabbitMQ {cluster.rabbit.node} on "
        f"{cluster.rabbit.port}, work directory {cluster.workdir}"
    )
    cluster.pg.init()
    await asyncio.gather(cluster.pg.start(), cluster.rabbit.start())
    await cluster.pg.create_database("prepaid")
    cluster.simulator.start()
    for name in SERVICES:
        cluster.services[name].start()
    for name in SERVICES:
        if await cluster.wait_healthy(name, 120) is None:
            raise RuntimeError(f"{name} did not start: see {cluster.services[name].log_path}")
    log("services up; loading the demo data through the API")
    seed_env = dict(cluster.services["gateway"].env)
    argv = [
        cluster.services["gateway"].argv[0],
        "-m",
        "standalone.seed",
        "--gateway",
        cluster.gateway_url(),
        "--admin-password",
        cluster.admin_password,
        "--dtus",
        str(args.dtus),
        "--meters",
        str(args.meters),
        "--base-port",
        str(cluster.ports["simulator"]),
        "--seed",
        str(args.seed),
    ]
    status, output = await run_command(argv, env=seed_env, timeout=600)
    if status != 0:
        raise RuntimeError(f"seeding failed: {output[-2000:]}")
    low = output.rsplit("low credit:", 1)[-1].strip()
    return [account.strip() for account in low.split(",") if account.strip()]


# --- load ---------------------------------------------------------------------------------


@dataclass
class Acknowledged:
    receipt: str
    account_id: str
    amount: Decimal
    payment_id: str
    status: int
    attempts: int


@dataclass
class Load:
    """Top-ups through the public API, each retried with its receipt until acknowledged."""

    cluster: Cluster
    accounts: list[str]
    seed: int
    rng: random.Random
    low_credit: set[str]
    acknowledged: dict[str, Acknowledged] = field(default_factory=dict)
    given_up: list[str] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)
    answers: Counter[str] = field(default_factory=Counter)
    server_errors: list[dict[str, Any]] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    client: httpx.AsyncClient | None = None
    count: int = 0

    async def open(self) -> None:
        # trust_env=False: no proxy from the environment; traffic stays on 127.0.0.1.
        self.client = httpx.AsyncClient(
            base_url=self.cluster.gateway_url(), timeout=10, trust_env=False
        )
        await self.login()

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()

    async def login(self) -> bool:
        assert self.client is not None
        try:
            response = await self.client.post(
                "/api/v1/auth/token",
                data={"username": "admin", "password": self.cluster.admin_password},
            )
        except httpx.HTTPError:
            return False
        if response.status_code != 200:
            return False
        self.client.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
        return True

    def next_receipt(self, tag: str = "") -> str:
        self.count += 1
        return f"CHAOS-{self.seed}-{tag}{self.count:06d}"

    async def top_up(
        self, account_id: str, amount: Decimal, receipt: str, *, give_up: float
    ) -> Acknowledged | None:
        """Send one top-up until acknowledged (same receipt each time); None if given up."""
        assert self.client is not None
        deadline = time.monotonic() + give_up
        attempts = 0
        while time.monotonic() < deadline:
            attempts += 1
            try:
                response = await self.client.post(
                    f"/api/v1/accounts/{account_id}/top-ups",
                    json={"amount": str(amount), "receipt": receipt},
                )
            except httpx.HTTPError as error:
                self.answers[type(error).__name__] += 1
            else:
                code = response.status_code
                self.answers[str(code)] += 1
                if code in (200, 201):
                    ack = Acknowledged(
                        receipt, account_id, amount, response.json()["id"], code, attempts
                    )
                    self.acknowledged[receipt] = ack
                    return ack
                if code == 401:
                    await self.login()
                elif code >= 500 and code not in (502, 503, 504):
                    self.server_errors.append(
                        {"at_s": self.cluster.clock(), "status": code, "body": response.text[:200]}
                    )
                elif 400 <= code < 500 and code not in (408, 425, 429):
                    self.refused.append({"receipt": receipt, "status": code, "body": response.text})
                    return None
            await asyncio.sleep(min(0.2 * 2 ** min(attempts, 4), 2.0))
        self.given_up.append(receipt)
        return None

    async def top_up_at_payments(
        self, account_id: str, amount: Decimal, receipt: str, *, give_up: float
    ) -> Acknowledged | None:
        """Record a top-up through payments' internal API (retried with the same receipt)."""
        url = f"http://127.0.0.1:{self.cluster.ports['payments']}/internal/top-ups"
        credential = self.cluster.services["payments"].env["PREPAID_SERVICE_CREDENTIAL"]
        body = {"account_id": account_id, "amount": str(amount), "receipt": receipt}
        deadline = time.monotonic() + give_up
        attempts = 0
        async with httpx.AsyncClient(
            timeout=10, trust_env=False, headers={"X-Service-Credential": credential}
        ) as client:
            while time.monotonic() < deadline:
                attempts += 1
                with contextlib.suppress(httpx.HTTPError):
                    response = await client.post(url, json=body | {"operator": "admin"})
                    if response.status_code in (200, 201):
                        ack = Acknowledged(
                            receipt,
                            account_id,
                            amount,
                            response.json()["id"],
                            response.status_code,
                            attempts,
                        )
                        self.acknowledged[receipt] = ack
                        return ack
                await asyncio.sleep(0.5)
        self.given_up.append(receipt)
        return None

    def random_amount(self, account_id: str) -> Decimal:
        """Up to 20.00; up to 1.00 for a low-credit account, so that it trips and closes."""
        top = 100 if account_id in self.low_credit else 2000
        return Decimal(self.rng.randint(1, top)) / 100

    async def worker(self, pause: float) -> None:
        """Top-ups one after another until told to stop (the last one is seen through)."""
        while not self.stop.is_set():
            account = self.rng.choice(self.accounts)
            await self.top_up(
                account,
                self.random_amount(account),
                self.next_receipt(),
                give_up=TOP_UP_GIVE_UP_SECONDS,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), pause)

    async def account_ids(self) -> list[str]:
        """The demo accounts, as the API lists them."""
        assert self.client is not None
        response = await self.client.get("/api/v1/accounts", params={"limit": 500})
        response.raise_for_status()
        ids = [item["id"] for item in response.json()["items"]]
        if not ids:
            raise RuntimeError("the API lists no account after seeding")
        return ids

    async def api_answers(self, account_id: str) -> bool:
        assert self.client is not None
        try:
            response = await self.client.get(f"/api/v1/accounts/{account_id}")
        except httpx.HTTPError:
            return False
        if response.status_code == 401:
            await self.login()
        return response.status_code == 200


# --- faults -------------------------------------------------------------------------------


@dataclass
class Chaos:
    cluster: Cluster
    load: Load
    rng: random.Random
    quick: bool
    faults: list[dict[str, Any]] = field(default_factory=list)

    # When the fault ended (the restart issued, the dependency started): recovery counts from
    # there, so it includes the time a service or a dependency takes to come up.
    ended: tuple[datetime, float] | None = None

    @property
    def bound(self) -> float:
        return RECOVERY_BOUND_SECONDS / 3 if self.quick else RECOVERY_BOUND_SECONDS

    def fault_ends(self) -> None:
        """Mark now as the end of the fault being injected."""
        self.ended = (datetime.now(UTC), time.monotonic())

    async def since_end_when(
        self, check: Callable[[], Awaitable[bool]], every: float = 0.25
    ) -> float | None:
        """Seconds from the fault's end until ``check`` holds (None: not within the bound)."""
        assert self.ended is not None
        origin = self.ended[1]
        while time.monotonic() - origin < self.bound:
            if await check():
                return round(time.monotonic() - origin, 2)
            await asyncio.sleep(every)
        return None

    async def credited(self, payment_id: str) -> bool:
        found = await self.cluster.db_value(
            "SELECT count(*) FROM billing_transactions WHERE operation_key = $1",
            f"payment:{payment_id}",
        )
        return bool(found)

    async def readings_drained(self) -> bool:
        """Whether billing's readings queue is empty (the backlog drained)."""
        try:
            queues = await self.cluster.rabbit.queues()
        except RuntimeError:
            return False
        return any(
            q["name"].endswith("billing.readings")
            and q["messages_ready"] + q["messages_unacknowledged"] == 0
            for q in queues
        )

    async def recovery(self, kind: str, in_hand: str | None) -> dict[str, Any]:
        """Seconds from the fault's end until the API answers, a new top-up is credited and a
        reading is billed; also the held top-up credited, or the backlog drained."""
        assert self.ended is not None
        since = self.ended[0]
        account = self.rng.choice(self.load.accounts)

        async def api() -> float | None:
            return await self.since_end_when(lambda: self.load.api_answers(account))

        async def top_up_credited() -> float | None:
            ack = await self.load.top_up(
                account,
                self.load.random_amount(account),
                self.load.next_receipt("probe-"),
                give_up=self.bound,
            )
            if ack is None:
                return None
            return await self.since_end_when(lambda: self.credited(ack.payment_id))

        async def reading_billed() -> float | None:
            async def billed() -> bool:
                found = await self.cluster.db_value(
                    "SELECT count(*) FROM billing_transactions "
                    "WHERE kind = 'consumption' AND created_at > $1",
                    since,
                )
                return bool(found)

            return await self.since_end_when(billed, every=0.5)

        async def held_top_up_credited() -> float | None:
            assert in_hand is not None
            return await self.since_end_when(lambda: self.credited(in_hand), every=0.5)

        checks = {
            "api_answers_s": api(),
            "top_up_credited_s": top_up_credited(),
            "reading_billed_s": reading_billed(),
        }
        if in_hand is not None:
            checks["held_top_up_credited_s"] = held_top_up_credited()
        if kind == "backlog-drain-db-blink":
            checks["backlog_drained_s"] = self.since_end_when(self.readings_drained, every=3)
        found = dict(zip(checks, await asyncio.gather(*checks.values()), strict=True))
        times = list(found.values())
        recovered = all(t is not None for t in times)
        return found | {
            "recovered": recovered,
            "recovery_s": max(t for t in times if t is not None) if recovered else None,
        }

    async def restart_service(self, name: str) -> dict[str, Any]:
        """``kill -9`` a service, then start it again a second later (a supervisor's pace)."""
        proc = self.cluster.services[name]
        self.cluster.held.add(name)
        try:
            await proc.kill9()
            await asyncio.sleep(1)
            self.fault_ends()
            proc.start()
        finally:
            self.cluster.held.discard(name)
        return {"service": name}

    async def restart_rabbit(self) -> dict[str, Any]:
        how = self.rng.choice(("stop", "kill -9"))
        if how == "stop":
            await self.cluster.rabbit.stop()
        else:
            await self.cluster.rabbit.kill()
        await asyncio.sleep(self.rng.uniform(1, 5))
        self.fault_ends()
        await self.cluster.rabbit.start()
        return {"how": how}

    async def restart_postgres(self, *, kill: bool) -> dict[str, Any]:
        if kill:
            await self.cluster.pg.kill()
        else:
            await self.cluster.pg.stop_fast()
        await asyncio.sleep(self.rng.uniform(1, 5))
        self.fault_ends()
        await self.cluster.pg.start()
        return {"how": "postmaster and backends kill -9" if kill else "fast stop"}

    async def pg_down_message_in_hand(self) -> dict[str, Any]:
        """Freeze billing, record a top-up, stop PostgreSQL, thaw billing, then PG back."""
        billing = self.cluster.services["billing"]
        account = self.rng.choice(self.load.accounts)
        billing.signal_group(signal.SIGSTOP)
        try:
            # Straight to payments, as the gateway would after asking billing (frozen now).
            ack = await self.load.top_up_at_payments(
                account, Decimal("7.77"), self.load.next_receipt("in-hand-"), give_up=60
            )
            await asyncio.sleep(2)  # payments' relay publishes; the broker hands it to billing
            await self.cluster.pg.stop_fast()
        finally:
            billing.signal_group(signal.SIGCONT)
        await asyncio.sleep(5)
        self.fault_ends()
        await self.cluster.pg.start()
        detail: dict[str, Any] = {"account_id": account, "database_down_s": 5}
        if ack is not None:
            detail |= {"receipt": ack.receipt, "held_payment_id": ack.payment_id}
        return detail

    async def backlog_drain_db_blink(self) -> dict[str, Any]:
        """Billing down while readings pile up, then PostgreSQL blinks during the drain."""
        billing = self.cluster.services["billing"]
        down = 20 if self.quick else 60
        self.cluster.held.add("billing")
        try:
            await billing.stop()
            await asyncio.sleep(down)
            billing.start()
        finally:
            self.cluster.held.discard("billing")
        up = await self.cluster.wait_healthy("billing", 120)
        await asyncio.sleep(0.5)  # the drain has begun
        await self.cluster.pg.stop_fast()
        await asyncio.sleep(5)
        self.fault_ends()
        await self.cluster.pg.start()
        return {"billing_down_s": down, "billing_started_in_s": up, "database_down_s": 5}

    async def start_while_down(self, dependency: str) -> dict[str, Any]:
        """Start a service while PostgreSQL or RabbitMQ is down; it must come up by itself."""
        name = self.rng.choice(SERVICES)
        proc = self.cluster.services[name]
        self.cluster.held.add(name)
        try:
            await proc.kill9()
            if dependency == "postgres":
                await self.cluster.pg.stop_fast()
            else:
                await self.cluster.rabbit.stop()
            proc.start()
            await asyncio.sleep(10)
            exited_while_down = proc.exit_code()
            self.fault_ends()
            if dependency == "postgres":
                await self.cluster.pg.start()
            else:
                await self.cluster.rabbit.start()
            if exited_while_down is not None:
                up_s = None
            else:
                up_s = await self.cluster.wait_healthy(name, self.bound)
                if up_s is None and not proc.alive():
                    exited_while_down = proc.exit_code()
        finally:
            self.cluster.held.discard(name)  # the supervisor restarts it if it has gone
        came_back = up_s is not None and exited_while_down is None
        if not came_back:
            self.cluster.unexpected_exits.append(
                {
                    "service": name,
                    "exit_code": exited_while_down,
                    "at_s": self.cluster.clock(),
                    "while": f"{dependency} down at start",
                }
            )
        return {
            "service": name,
            "dependency_down_s": 10,
            "exit_code_while_down": exited_while_down,
            "ready_after_dependency_back_s": up_s,
            "came_back_by_itself": came_back,
        }

    async def inject(self, kind: str) -> dict[str, Any]:
        if kind.startswith("kill:"):
            return await self.restart_service(kind.split(":", 1)[1])
        if kind == "rabbitmq-restart":
            return await self.restart_rabbit()
        if kind in ("postgres-restart", "postgres-kill"):
            return await self.restart_postgres(kill=kind == "postgres-kill")
        if kind == "pg-down-message-in-hand":
            return await self.pg_down_message_in_hand()
        if kind == "backlog-drain-db-blink":
            return await self.backlog_drain_db_blink()
        if kind == "start-while-pg-down":
            return await self.start_while_down("postgres")
        if kind == "start-while-broker-down":
            return await self.start_while_down("rabbitmq")
        raise ValueError(kind)

    def schedule(self) -> Iterator[str]:
        """Every kind once per round, in a seeded random order (--quick: a fixed order)."""
        if self.quick:
            yield from QUICK_ORDER
            return
        for _ in range(1000):
            kinds = list(FAULT_KINDS)
            self.rng.shuffle(kinds)
            yield from kinds

    async def run(self, seconds: float) -> None:
        """Inject faults one after another for ``seconds``, each followed by its recovery."""
        end = time.monotonic() + seconds
        for kind in self.schedule():
            if time.monotonic() >= end:
                break
            began = self.cluster.clock()
            log(f"fault {len(self.faults) + 1}: {kind}")
            self.ended = None
            try:
                detail = await self.inject(kind)
                error = None
            except Exception as exc:  # a fault that could not be injected is reported
                detail, error = {}, f"{type(exc).__name__}: {exc}"
                log(f"  could not inject {kind}: {error}")
                await self.heal()
            if self.ended is None:
                self.fault_ends()
            recovery = await self.recovery(kind, detail.get("held_payment_id"))
            entry = {
                "kind": kind,
                "at_s": began,
                "injected_for_s": round(self.cluster.clock() - began, 2),
                **detail,
                **recovery,
            }
            if error:
                entry["error"] = error
            self.faults.append(entry)
            log(f"  recovery {recovery['recovery_s']} s ({recovery})")
            pause = self.rng.uniform(2, 5) if self.quick else self.rng.uniform(5, 20)
            await asyncio.sleep(pause)

    async def heal(self) -> None:
        """Bring the infrastructure back after a fault that failed half-way."""
        if not self.cluster.pg.proc.alive():
            with contextlib.suppress(Exception):
                await self.cluster.pg.start()
        if not self.cluster.rabbit.proc.alive():
            with contextlib.suppress(Exception):
                await self.cluster.rabbit.start()
        for proc in self.cluster.services.values():
            proc.signal_group(signal.SIGCONT)


# --- quiesce and invariants ---------------------------------------------------------------


async def wait_top_ups_credited(cluster: Cluster, load: Load, timeout: float) -> int:
    """Wait until every acknowledged top-up has its ledger transaction; return the missing."""
    keys = [f"payment:{ack.payment_id}" for ack in load.acknowledged.values()]
    deadline = time.monotonic() + timeout
    missing = len(keys)
    while time.monotonic() < deadline:
        found = await cluster.db_value(
            "SELECT count(*) FROM billing_transactions WHERE operation_key = ANY($1::text[])", keys
        )
        if found is not None:
            missing = len(keys) - found
            if missing <= 0:
                return 0
        await asyncio.sleep(1)
    return missing


async def relay_disagreements(connection: asyncpg.Connection) -> list[dict[str, Any]]:
    """Meters whose relay or supply decision disagrees with their account (docs/billing.md)."""
    now = datetime.now(UTC)
    rows = await connection.fetch(
        """
        SELECT m.meter_id, m.account_id, m.supply, a.mode, a.trip_line, a.overdraft_limit,
               a.protected, coalesce(b.balance, 0) AS balance, c.relay, c.online
        FROM billing_meters m
        JOIN billing_accounts a ON a.id = m.account_id
        LEFT JOIN billing_balances b ON b.ledger_account = 'tenant:' || m.account_id
        LEFT JOIN collector_meters c ON c.id = m.meter_id
        """
    )
    holds = await connection.fetch(
        "SELECT scope, target FROM billing_holds WHERE released_at IS NULL "
        "AND (until IS NULL OR until > $1)",
        now,
    )
    sheds = {
        r["group_name"]
        for r in await connection.fetch(
            "SELECT group_name FROM billing_sheds WHERE ended_at IS NULL"
        )
    }
    groups: dict[str, set[str]] = {}
    for row in await connection.fetch("SELECT account_id, group_name FROM billing_account_groups"):
        groups.setdefault(row["account_id"], set()).add(row["group_name"])
    policy = await connection.fetchval("SELECT policy::text FROM billing_site_policy LIMIT 1")
    friendly_possible = bool(
        policy
        and any(
            json.loads(policy).get(key)
            for key in ("friendly_windows", "friendly_weekdays", "holidays")
        )
    )
    wrong = []
    for row in rows:
        account_groups = groups.get(row["account_id"], set())
        held = any(
            h["scope"] == "global"
            or (h["scope"] == "meter" and h["target"] == row["meter_id"])
            or (h["scope"] == "group" and h["target"] in account_groups)
            for h in holds
        )
        cut_line = Decimal(row["trip_line"] - row["overdraft_limit"]) / 100
        balance = Decimal(row["balance"]) / 100
        if held:
            expected = {"on"}
        elif account_groups & sheds and not row["protected"]:
            expected = {"off"}
        elif row["mode"] == "postpaid" or balance > cut_line:
            expected = {"on"}
        else:
            expected = {"on", "off"} if friendly_possible else {"off"}
        problems = []
        if row["supply"] not in expected:
            problems.append(f"billing decided {row['supply']}")
        if row["relay"] is not None:  # a meter without a relay has nothing to agree
            physical = "on" if row["relay"] == "closed" else "off"
            if physical != row["supply"] or physical not in expected:
                problems.append(f"relay {row['relay']}")
        if problems:
            wrong.append(
                {
                    "meter_id": row["meter_id"],
                    "account_id": row["account_id"],
                    "balance": str(balance),
                    "cut_line": str(cut_line),
                    "expected": sorted(expected),
                    "problems": problems,
                    "meter_online": row["online"],
                }
            )
    return wrong


async def check_relays(cluster: Cluster, settle: float) -> dict[str, Any]:
    """Relays agree with accounts at some moment within ``settle`` seconds (commands travel)."""
    deadline = time.monotonic() + settle
    last: list[dict[str, Any]] = []
    samples = 0
    while time.monotonic() < deadline:
        samples += 1
        connection = await cluster.db()
        try:
            last = await relay_disagreements(connection)
        finally:
            await connection.close()
        if not last:
            break
        await asyncio.sleep(2)
    connection = await cluster.db()
    try:
        supply = dict(
            await connection.fetch("SELECT supply, count(*) FROM billing_meters GROUP BY supply")
        )
        relays = dict(
            await connection.fetch(
                "SELECT coalesce(relay, 'none'), count(*) FROM collector_meters GROUP BY relay"
            )
        )
        events = dict(
            await connection.fetch(
                "SELECT action, count(*) FROM billing_supply_events GROUP BY action"
            )
        )
    finally:
        await connection.close()
    return {
        "ok": not last,
        "meters_by_supply": supply,
        "meters_by_relay": relays,
        "supply_changes_in_the_run": events,
        "samples": samples,
        "disagreeing": last[:20],
        "rule": "held: on; shed (unprotected): off; postpaid: on; prepaid: on iff balance > "
        "trip_line - overdraft_limit (either way in friendly hours); relay closed = on",
    }


async def wait_quiet(cluster: Cluster, timeout: float) -> tuple[list[dict[str, Any]], int]:
    """Wait until every queue and every outbox is empty at once; the last listing."""
    deadline = time.monotonic() + timeout
    queues: list[dict[str, Any]] = []
    outbox = -1
    while time.monotonic() < deadline:
        with contextlib.suppress(RuntimeError):
            queues = await cluster.rabbit.queues()
        outbox = await count_outbox(cluster)
        # The dead-letter queue never drains by itself: the invariant reports what it holds.
        busy = [
            q
            for q in queues
            if (q["messages_ready"] or q["messages_unacknowledged"])
            and not str(q["name"]).endswith("dead-letters")
        ]
        if queues and not busy and outbox == 0:
            break
        await asyncio.sleep(3)
    return queues, outbox


async def count_outbox(cluster: Cluster) -> int:
    """Rows in every service's outbox (-1 while the database is unreachable)."""
    try:
        connection = await cluster.db()
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return -1
    try:
        tables = await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE tablename LIKE '%\\_outbox'"
        )
        total = 0
        for row in tables:
            total += await connection.fetchval(f'SELECT count(*) FROM "{row["tablename"]}"')
        return total
    finally:
        await connection.close()


async def outbox_rows(connection: asyncpg.Connection) -> dict[str, int]:
    tables = await connection.fetch(
        "SELECT tablename FROM pg_tables WHERE tablename LIKE '%\\_outbox'"
    )
    return {
        row["tablename"]: await connection.fetchval(f'SELECT count(*) FROM "{row["tablename"]}"')
        for row in tables
    }


async def check_ledger(connection: asyncpg.Connection) -> dict[str, Any]:
    """Entries sum to zero overall and per transaction; each balance is its entries' sum."""
    async with connection.transaction(isolation="repeatable_read", readonly=True):
        total = await connection.fetchval("SELECT coalesce(sum(amount), 0) FROM billing_entries")
        unbalanced = await connection.fetch(
            "SELECT transaction_id, sum(amount) AS total FROM billing_entries "
            "GROUP BY transaction_id HAVING sum(amount) <> 0 LIMIT 20"
        )
        mismatched = await connection.fetch(
            """
            SELECT coalesce(s.ledger_account, b.ledger_account) AS ledger_account,
                   s.total AS entries, b.balance AS projection
            FROM (SELECT ledger_account, sum(amount) AS total FROM billing_entries
                  GROUP BY ledger_account) s
            FULL JOIN billing_balances b ON b.ledger_account = s.ledger_account
            WHERE coalesce(s.total, 0) <> coalesce(b.balance, 0)
            LIMIT 20
            """
        )
        transactions = await connection.fetchval("SELECT count(*) FROM billing_transactions")
        entries = await connection.fetchval("SELECT count(*) FROM billing_entries")
    return {
        "ok": total == 0 and not unbalanced and not mismatched,
        "transactions": transactions,
        "entries": entries,
        "sum_of_entries_fen": total,
        "unbalanced_transactions": [dict(r) for r in unbalanced],
        "projections_not_matching": [dict(r) for r in mismatched],
    }


async def check_top_ups(connection: asyncpg.Connection, load: Load) -> dict[str, Any]:
    """Each acknowledged top-up is one payment and one credit of its amount; none is extra."""
    payments = await connection.fetch(
        "SELECT id, account_id, amount, reference FROM payments_payments"
    )
    by_reference: dict[str, list[asyncpg.Record]] = {}
    for row in payments:
        by_reference.setdefault(row["reference"], []).append(row)
    credits = await connection.fetch(
        """
        SELECT t.operation_key, count(DISTINCT t.id) AS transactions,
               coalesce(sum(e.amount) FILTER (WHERE e.ledger_account = 'tenant:' || t.account_id
                                              OR e.ledger_account = 'arrears:' || t.account_id), 0)
                   AS credited
        FROM billing_transactions t JOIN billing_entries e ON e.transaction_id = t.id
        WHERE t.operation_key LIKE 'payment:%'
        GROUP BY t.operation_key
        """
    )
    credit_of = {row["operation_key"]: row for row in credits}
    problems: list[dict[str, Any]] = []
    for ack in load.acknowledged.values():
        rows = by_reference.get(ack.receipt, [])
        if len(rows) != 1:
            problems.append({"receipt": ack.receipt, "problem": f"{len(rows)} payment rows"})
            continue
        row = rows[0]
        if str(row["id"]) != ack.payment_id or Decimal(row["amount"]) / 100 != ack.amount:
            problems.append({"receipt": ack.receipt, "problem": "payment differs from the answer"})
        credit = credit_of.get(f"payment:{row['id']}")
        if credit is None:
            problems.append(
                {"receipt": ack.receipt, "payment_id": ack.payment_id, "problem": "never credited"}
            )
        elif Decimal(credit["credited"]) / 100 != ack.amount:
            problems.append(
                {
                    "receipt": ack.receipt,
                    "problem": f"credited {Decimal(credit['credited']) / 100}, paid {ack.amount}",
                }
            )
    # Payments nobody saw acknowledged (an answer lost in a fault) must be credited once too.
    uncredited = [str(row["id"]) for row in payments if f"payment:{row['id']}" not in credit_of]
    orphans = [
        key
        for key in credit_of
        if key.removeprefix("payment:") not in {str(row["id"]) for row in payments}
    ]
    chaos_unacknowledged = [
        ref for ref in by_reference if ref.startswith("CHAOS-") and ref not in load.acknowledged
    ]
    return {
        "ok": not problems and not uncredited and not orphans,
        "acknowledged": len(load.acknowledged),
        "acknowledged_amount": str(sum((a.amount for a in load.acknowledged.values()), Decimal(0))),
        "payments": len(payments),
        "payment_credits": len(credits),
        "problems": problems[:20],
        "problem_count": len(problems),
        "payments_never_credited": uncredited[:20],
        "credits_without_payment": orphans[:20],
        "recorded_but_never_acknowledged": chaos_unacknowledged[:20],
        "given_up_receipts": load.given_up[:20],
        "refused": load.refused[:20],
    }


async def check_energy(connection: asyncpg.Connection) -> dict[str, Any]:
    """Per bound meter: energy billed = register delta since binding, charged at the price.

    The delta is the last register billing rated minus the first it received after binding
    (billing_readings); the last must be the collector's last read (nothing lost on the way);
    the cost must be the flat price times the energy, rounded once (docs/billing.md).
    """
    rows = await connection.fetch(
        """
        SELECT m.meter_id, m.account_id, m.bound_at,
               (SELECT array_agg(f.energy_kwh ORDER BY f.received_at) FROM (
                   SELECT r.energy_kwh, r.received_at FROM billing_readings r
                   WHERE r.meter_id = m.meter_id AND r.received_at >= m.bound_at
                   ORDER BY r.received_at LIMIT 2) f) AS first_wh,
               (SELECT min(r.received_at) FROM billing_readings r
                 WHERE r.meter_id = m.meter_id AND r.received_at >= m.bound_at)
                 - m.bound_at < interval '2 seconds' AS first_near_binding,
               m.position::text AS position,
               (SELECT max(r.energy_kwh) FROM billing_readings r
                 WHERE r.meter_id = m.meter_id) AS last_wh,
               (SELECT coalesce(sum(d.metered_kwh), 0) FROM billing_daily_usage d
                 WHERE d.meter_id = m.meter_id) AS metered_micro,
               (SELECT coalesce(sum(d.billed_kwh), 0) FROM billing_daily_usage d
                 WHERE d.meter_id = m.meter_id) AS billed_micro,
               (SELECT coalesce(sum(d.cost), 0) FROM billing_daily_usage d
                 WHERE d.meter_id = m.meter_id) AS cost_fen,
               (SELECT coalesce(-sum(e.amount), 0) FROM billing_transactions t
                  JOIN billing_entries e ON e.transaction_id = t.id
                 WHERE t.kind = 'consumption' AND t.operation_key LIKE 'consumption:' ||
                       m.meter_id || ':%' AND e.ledger_account = 'tenant:' || m.account_id)
                   AS posted_fen,
               c.last_energy_kwh AS collector_wh
        FROM billing_meters m LEFT JOIN collector_meters c ON c.id = m.meter_id
        ORDER BY m.meter_id
        """
    )
    problems = []
    total_kwh = Decimal(0)
    for row in rows:
        # A batch that began just before the binding committed rated its reading as
        # unbound: then billing counts from the second reading received after binding.
        received = [Decimal(wh) / 1000 for wh in row["first_wh"] or [0]]
        firsts = received if row["first_near_binding"] else received[:1]
        last = Decimal(row["last_wh"] or 0) / 1000
        position = json.loads(row["position"]) if row["position"] else {}
        rated = position.get("last") or {}
        last_rated = Decimal(rated["total_kwh"]) if "total_kwh" in rated else None
        metered = Decimal(row["metered_micro"]) / 1_000_000
        billed = Decimal(row["billed_micro"]) / 1_000_000
        cost = Decimal(row["cost_fen"]) / 100
        posted = Decimal(row["posted_fen"]) / 100
        collector = None if row["collector_wh"] is None else Decimal(row["collector_wh"]) / 1000
        expected_cost = (billed * DEMO_PRICE).quantize(Decimal("0.01"), ROUND_HALF_UP)
        total_kwh += metered
        issues = []
        if not any(metered == last - first for first in firsts):
            issues.append(f"metered {metered} kWh, register delta {last - firsts[0]}")
        if last_rated is not None and last_rated != last:
            issues.append(f"last rated register {last_rated}, last received {last}")
        if collector is not None and collector != last:
            issues.append(f"collector last read {collector}, billing last rated {last}")
        if cost != expected_cost:
            issues.append(f"cost {cost}, price x energy {expected_cost}")
        if posted != cost:
            issues.append(f"consumption postings {posted}, usage cost {cost}")
        if issues:
            problems.append({"meter_id": row["meter_id"], "issues": issues})
    readings = await connection.fetchval("SELECT count(*) FROM billing_readings")
    consumption = await connection.fetchval(
        "SELECT count(*) FROM billing_transactions WHERE kind = 'consumption'"
    )
    return {
        "ok": not problems and bool(rows),
        "meters": len(rows),
        "readings_recorded": readings,
        "consumption_transactions": consumption,
        "energy_billed_kwh": str(total_kwh),
        "problems": problems[:20],
        "problem_count": len(problems),
    }


async def quiesce_and_check(
    cluster: Cluster, load: Load, chaos: Chaos, args: argparse.Namespace
) -> dict[str, Any]:
    """Stop the load, let everything settle, then check every invariant."""
    log("quiescing: load stopped, waiting for the last top-ups to be acknowledged")
    load.stop.set()
    missing = await wait_top_ups_credited(cluster, load, chaos.bound)
    log(f"acknowledged top-ups not yet credited after the wait: {missing}")
    relays = await check_relays(cluster, settle=120)
    log(f"relays agree: {relays['ok']}; freezing the field and draining")
    cluster.simulator.signal_group(signal.SIGSTOP)
    await asyncio.sleep(10)  # reads now time out; the collector's last readings go out
    queues, _ = await wait_quiet(cluster, 240 if not args.quick else 120)
    connection = await cluster.db()
    try:
        outbox = await outbox_rows(connection)
        ledger = await check_ledger(connection)
        top_ups = await check_top_ups(connection, load)
        energy = await check_energy(connection)
    finally:
        await connection.close()
    dead = [q for q in queues if str(q["name"]).endswith("dead-letters")]
    busy = [q for q in queues if q["messages_ready"] or q["messages_unacknowledged"]]
    targeted = [f for f in chaos.faults if f["kind"].startswith("start-while")]
    return {
        "ledger_balanced": ledger,
        "top_ups_credited_once": top_ups,
        "energy_billed_equals_register_delta": energy,
        "relays_agree_with_accounts": relays,
        "queues_empty": {
            "ok": bool(queues) and not busy,
            "queues": queues,
            "dead_letter_messages": sum(
                q["messages_ready"] + q["messages_unacknowledged"] for q in dead
            ),
        },
        "outbox_empty": {"ok": all(v == 0 for v in outbox.values()), "rows": outbox},
        "services_come_back_by_themselves": {
            "ok": not cluster.unexpected_exits,
            "unexpected_exits": cluster.unexpected_exits,
            "started_while_a_dependency_was_down": [
                {
                    k: f.get(k)
                    for k in ("kind", "service", "came_back_by_itself", "exit_code_while_down")
                }
                for f in targeted
            ],
        },
        "api_never_500": {
            "ok": not load.server_errors,
            "count": len(load.server_errors),
            "examples": load.server_errors[:10],
        },
        "every_fault_recovered": {
            "ok": all(f["recovered"] for f in chaos.faults),
            "not_recovered": [
                {"kind": f["kind"], "at_s": f["at_s"]} for f in chaos.faults if not f["recovered"]
            ],
        },
    }


# --- the run ------------------------------------------------------------------------------


async def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    rng = random.Random(args.seed)
    cluster = build_cluster(workdir, args, rng)
    began_wall = datetime.now(UTC)
    low = await start_cluster(cluster, args)
    setup_s = cluster.clock()
    log(f"seeded in {setup_s:.0f} s; low credit: {', '.join(low) or 'none'}")
    stop_supervisor = asyncio.Event()
    supervisor = asyncio.create_task(cluster.supervise(stop_supervisor), name="supervisor")
    load = Load(cluster, [], args.seed, random.Random(args.seed + 1), set(low))
    await load.open()
    load.accounts = await load.account_ids()
    chaos = Chaos(cluster, load, rng, args.quick)
    workers = [
        asyncio.create_task(load.worker(args.pause), name=f"top-ups-{n}")
        for n in range(args.senders)
    ]
    try:
        log(f"load and faults for {args.minutes} min")
        fault_phase = time.monotonic()
        await chaos.run(args.minutes * 60)
        fault_s = time.monotonic() - fault_phase
        invariants = await quiesce_and_check(cluster, load, chaos, args)
    finally:
        load.stop.set()
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        stop_supervisor.set()
        await supervisor
        await load.close()
    recoveries = [f["recovery_s"] for f in chaos.faults if f["recovery_s"] is not None]
    return {
        "benchmark": "chaos",
        "machine": machine(),
        "commit": commit_of_tree(),
        "seed": args.seed,
        "began": began_wall.isoformat(timespec="seconds"),
        "field": {"dtus": args.dtus, "meters_per_dtu": args.meters, "speed": args.speed},
        "setup_s": setup_s,
        "fault_phase_s": round(fault_s, 1),
        "low_credit_accounts": low,
        "counts": {
            "faults": len(chaos.faults),
            "faults_by_kind": dict(Counter(f["kind"] for f in chaos.faults)),
            "top_ups_acknowledged": len(load.acknowledged),
            "top_up_answers": dict(load.answers),
            "service_starts": {n: p.starts for n, p in cluster.services.items()},
        },
        "recovery_s": {
            "max": max(recoveries, default=None),
            "median": sorted(recoveries)[len(recoveries) // 2] if recoveries else None,
        },
        "faults": chaos.faults,
        "invariants": invariants,
        "ok": all(check["ok"] for check in invariants.values()),
    }


def cleanup(workdir: Path, keep: bool) -> None:
    """Stop every process this run started (services first, infrastructure last)."""
    for proc in reversed(Proc.every):
        if proc.name == "rabbitmq" and proc.alive():
            rabbit_env = proc.env
            node = rabbit_env["RABBITMQ_NODENAME"]
            ctl = str(Path(proc.argv[0]).with_name("rabbitmqctl"))
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                subprocess.run(
                    [ctl, "-q", "-n", node, "stop"],
                    env=rabbit_env,
                    timeout=60,
                    capture_output=True,
                    check=False,
                )
        if proc.name == "postgres":
            proc.signal_leader(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                if proc.popen is not None:
                    proc.popen.wait(20)
        proc.stop_now()
    if keep:
        log(f"kept {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)


def summary(results: dict[str, Any]) -> str:
    lines = [
        f"chaos: seed {results['seed']}, {results['counts']['faults']} faults in "
        f"{results['fault_phase_s']} s, {results['counts']['top_ups_acknowledged']} top-ups "
        f"acknowledged; recovery max {results['recovery_s']['max']} s, "
        f"median {results['recovery_s']['median']} s",
    ]
    for fault in results["faults"]:
        lines.append(
            f"  {fault['at_s']:>7.1f} s  {fault['kind']:<26} recovery {fault['recovery_s']} s"
        )
    for name, check in results["invariants"].items():
        lines.append(f"  {'PASS' if check['ok'] else 'FAIL'}  {name}")
    lines.append("chaos: " + ("every invariant held" if results["ok"] else "INVARIANTS FAILED"))
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=20.0, help="length of the fault phase")
    parser.add_argument("--seed", type=int, default=1, help="seeds the faults, the load, the field")
    parser.add_argument("--quick", action="store_true", help="a smoke run of about 3 minutes")
    parser.add_argument("--dtus", type=int, default=4)
    parser.add_argument("--meters", type=int, default=8, help="meters per DTU")
    parser.add_argument("--speed", type=float, default=60.0, help="the simulator's time speed-up")
    parser.add_argument("--senders", type=int, default=2, help="concurrent top-up senders")
    parser.add_argument(
        "--pause", type=float, default=0.5, help="seconds between a sender's top-ups"
    )
    parser.add_argument("--output", default=str(OUT))
    parser.add_argument("--keep", action="store_true", help="keep the data and logs directory")
    args = parser.parse_args(argv)
    if args.quick and "--minutes" not in " ".join(argv or sys.argv):
        args.minutes = 3.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="prepaid-chaos-"))
    workdir.chmod(0o755)  # PostgreSQL runs as its own user when this runs as root

    def terminate(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    # Started in the background by a shell, SIGINT comes ignored: Ctrl-C must still stop it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    results: dict[str, Any] | None = None
    try:
        results = asyncio.run(run(args, workdir))
    except KeyboardInterrupt:
        log("interrupted; stopping everything")
        return 130
    finally:
        # Logs and data stay for a look unless everything held.
        cleanup(workdir, keep=args.keep or results is None or not results["ok"])
    write_results(args.output, results, began=began)
    print(summary(results))
    return 0 if results["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
