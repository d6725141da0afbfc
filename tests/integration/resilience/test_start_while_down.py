"""A service started while its database is down waits for it, then comes up.

The reproduction of issue 10: started with PostgreSQL unreachable, a service exited
(status 3 or 1) and stayed down. Now it logs that it waits, keeps trying with back-off,
and once the database appears it migrates, consumes and reports ready on ``/readyz``.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import httpx

from .conftest import PrivatePostgres, delete_bus_prefix, free_port

ROOT = Path(__file__).resolve().parents[3]
SOURCES = ["libs", "services/payments"]


async def test_a_service_started_while_its_database_is_down_waits_and_comes_up(
    private_postgres: PrivatePostgres, amqp_url: str, bus_prefix: str, tmp_path: Path
) -> None:
    private_postgres.stop()
    port = free_port()
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(str(ROOT / source) for source in SOURCES),
        "PREPAID_DATABASE_URL": private_postgres.url(),
        "PREPAID_AMQP_URL": amqp_url,
        "PREPAID_BUS_PREFIX": bus_prefix,
        "PREPAID_SERVICE_PORT": str(port),
        "PREPAID_LOG_FORMAT": "text",
    }
    log_path = tmp_path / "payments.log"
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
        await asyncio.sleep(4)  # the code before exited within a second
        assert process.returncode is None, log_path.read_text()
        assert "waiting for the database" in log_path.read_text()

        private_postgres.start()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            ready = False
            for _ in range(200):  # back-off tops out at 10 s; allow for the whole start
                try:
                    ready = (await client.get("/readyz")).status_code == 200
                except httpx.TransportError:
                    ready = False
                if ready or process.returncode is not None:
                    break
                await asyncio.sleep(0.1)
            assert ready, log_path.read_text()
            assert (await client.get("/healthz")).status_code == 200

            # The database goes away again: not ready (the probe says it), not dead.
            private_postgres.stop()
            answer = await client.get("/readyz")
            assert answer.status_code == 503
            assert answer.json()["code"] == "unavailable"
            assert process.returncode is None
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()
        await delete_bus_prefix(amqp_url, bus_prefix)
