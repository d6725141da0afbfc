"""A private PostgreSQL server per test module, stopped and started by the tests.

Tests that take a database away never touch the shared server: each module gets its own
cluster (own data directory, port and socket directory, trust auth, no fsync), initialised
once; each test starts it, may stop it, and always leaves it stopped and removed at the end.
"""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import aio_pika
import asyncpg
import pytest


def free_port() -> int:
    """Return a TCP port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class PrivatePostgres:
    """One throwaway PostgreSQL cluster: ``start``, ``stop`` (immediate) and its URL."""

    def __init__(self, bin_dir: Path, root: Path) -> None:
        self.bin_dir = bin_dir
        self.root = root
        self.data = root / "data"
        self.port = free_port()
        # initdb refuses to run as root: the cluster belongs to the postgres user then.
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(root, owner.pw_uid, owner.pw_gid)
            self._as_user = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        subprocess.run(
            [*self._as_user, *args], check=True, capture_output=True, text=True, timeout=60
        )

    def init(self) -> None:
        self._run(
            str(self.bin_dir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c full_page_writes=off"
        )
        self._run(
            str(self.bin_dir / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.root / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            "30",
            "start",
        )

    def stop(self) -> None:
        """Stop at once (immediate mode): clients see their connections drop."""
        self._run(
            str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"
        )

    def is_running(self) -> bool:
        status = subprocess.run(
            [*self._as_user, str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "status"],
            capture_output=True,
            check=False,
        )
        return status.returncode == 0

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"


def _postgres_bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


@pytest.fixture(scope="module")
def private_postgres_cluster() -> Iterator[PrivatePostgres]:
    """An initialised, stopped private cluster for the module's tests."""
    bin_dir = _postgres_bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    root = Path(tempfile.mkdtemp(prefix="prepaid-private-pg-"))
    server = PrivatePostgres(bin_dir, root)
    try:
        server.init()
        yield server
    finally:
        if server.is_running():
            server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def private_postgres(private_postgres_cluster: PrivatePostgres) -> Iterator[PrivatePostgres]:
    """The private cluster, running at the start of the test and stopped after it."""
    server = private_postgres_cluster
    server.start()
    try:
        yield server
    finally:
        if server.is_running():
            server.stop()


@pytest.fixture
async def private_database(private_postgres: PrivatePostgres) -> str:
    """A fresh database on the private server; its SQLAlchemy URL."""
    name = f"resilience_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(
        host="127.0.0.1", port=private_postgres.port, user="postgres", database="postgres"
    )
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return private_postgres.url(name)


async def delete_bus_prefix(amqp_url: str, prefix: str) -> None:
    """Delete every queue and exchange named ``<prefix>.*`` on the shared broker."""
    listing = await asyncio.create_subprocess_exec(
        "rabbitmqctl", "-q", "list_queues", "name", stdout=asyncio.subprocess.PIPE
    )
    names, _ = await listing.communicate()
    queues = [name for name in names.decode().split() if name.startswith(f"{prefix}.")]
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        for queue in queues:
            await channel.queue_delete(queue)
        for exchange in (f"{prefix}.events", f"{prefix}.dead"):
            await channel.exchange_delete(exchange)
