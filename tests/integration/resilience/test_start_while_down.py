"""A service started while its database or broker is down waits for it, then comes up.

The reproduction of issue 10: started with PostgreSQL or RabbitMQ unreachable, a service
exited (status 3 or 1) and stayed down. Now it logs that it waits, keeps trying with
back-off, and once the dependency appears it migrates, consumes and reports ready on
``/readyz``. The database is a private server the test starts late; the broker is the
shared one, reached through a forwarder the test opens late (it is never stopped).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from .conftest import PrivatePostgres, delete_bus_prefix, free_port

ROOT = Path(__file__).resolve().parents[3]
SOURCES = ["libs", "services/payments"]


@contextlib.asynccontextmanager
async def payments_process(
    *, database_url: str, amqp_url: str, bus_prefix: str, port: int, log_path: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    """Run ``python -m payments`` alone; stop it (and delete its queues) afterwards."""
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(str(ROOT / source) for source in SOURCES),
        "PREPAID_DATABASE_URL": database_url,
        "PREPAID_AMQP_URL": amqp_url,
        "PREPAID_BUS_PREFIX": bus_prefix,
        "PREPAID_SERVICE_PORT": str(port),
        "PREPAID_LOG_FORMAT": "text",
    }
    with log_path.open("wb") as log_file:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "payments",
            env=environment,
            stdout=log_file,
            stderr=asyncio.subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


async def becomes_ready(
    client: httpx.AsyncClient, process: asyncio.subprocess.Process, *, within: float = 20
) -> bool:
    """Poll ``/readyz`` until it answers 200 (the back-off tops out at 10 s)."""
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline and process.returncode is None:
        with contextlib.suppress(httpx.TransportError):
            if (await client.get("/readyz")).status_code == 200:
                return True
        await asyncio.sleep(0.1)
    return False


async def test_a_service_started_while_its_database_is_down_waits_and_comes_up(
    private_postgres: PrivatePostgres, amqp_url: str, bus_prefix: str, tmp_path: Path
) -> None:
    private_postgres.stop()
    port = free_port()
    log_path = tmp_path / "payments.log"
    try:
        async with payments_process(
            database_url=private_postgres.url(),
            amqp_url=amqp_url,
            bus_prefix=bus_prefix,
            port=port,
            log_path=log_path,
        ) as process:
            await asyncio.sleep(4)  # the code before exited within a second
            assert process.returncode is None, log_path.read_text()
            assert "waiting for the database" in log_path.read_text()

            private_postgres.start()
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                assert await becomes_ready(client, process), log_path.read_text()
                assert (await client.get("/healthz")).status_code == 200

                # The database goes away again: not ready (the probe says so), not dead.
                private_postgres.stop()
                answer = await client.get("/readyz")
                assert answer.status_code == 503
                assert answer.json()["code"] == "unavailable"
                assert process.returncode is None
    finally:
        await delete_bus_prefix(amqp_url, bus_prefix)


async def test_a_service_started_while_its_broker_is_down_waits_and_comes_up(
    private_database: str, amqp_url: str, bus_prefix: str, tmp_path: Path
) -> None:
    broker = urlsplit(amqp_url)
    late_port = free_port()  # nothing listens here yet: the broker is "down"

    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(
            broker.hostname or "127.0.0.1", broker.port or 5672
        )

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            finally:
                sink.close()

        await asyncio.gather(
            pipe(reader, upstream_writer), pipe(upstream_reader, writer), return_exceptions=True
        )

    late_url = broker._replace(netloc=f"{broker.netloc.rsplit(':', 1)[0]}:{late_port}").geturl()
    port = free_port()
    log_path = tmp_path / "payments.log"
    forwarder: asyncio.Server | None = None
    try:
        async with payments_process(
            database_url=private_database,
            amqp_url=late_url,
            bus_prefix=bus_prefix,
            port=port,
            log_path=log_path,
        ) as process:
            await asyncio.sleep(4)
            assert process.returncode is None, log_path.read_text()
            assert "waiting for the broker" in log_path.read_text()

            forwarder = await asyncio.start_server(forward, "127.0.0.1", late_port)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                assert await becomes_ready(client, process), log_path.read_text()
    finally:
        if forwarder is not None:
            forwarder.close()
        await delete_bus_prefix(amqp_url, bus_prefix)
