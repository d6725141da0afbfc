"""The standalone product at site scale (``make bench-site``): issue 17's item 6.

A site of 2,000 meters is ordinary. One run starts ``python -m standalone`` as ``make run``
does, on a fresh data directory, with the simulator at ``--dtus`` x ``--meters`` (63 x 32 by
default) at 1x speed, and times:

1. first start: until the API answers (``/healthz``), until every meter has a reading
   (``GET /api/v1/meters``: the DTUs are registered first, the accounts load meanwhile) and
   until the product prints that its demo data is in;
2. the resident memory (RSS) of the process then, and a minute later;
3. a restart onto the same data (SIGTERM, then start again): until the API answers and
   until the demo data is reported in (nothing is loaded again).

Writes ``bench-results/site.json``.

    flock /tmp/bench.lock make bench-site
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from benchkit import machine, write_results

ROOT = Path(__file__).resolve().parent.parent
ADMIN_PASSWORD = "bench site admin 1"
READY_LINE = "Demo data ready"  # standalone.seed.DEMO_DATA_READY


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(check: Callable[[], bool], *, timeout: float, what: str) -> float:
    """Poll ``check`` until true; return the seconds it took."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if check():
            return time.monotonic() - began
        time.sleep(0.1)
    raise RuntimeError(f"{what} not within {timeout} s")


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return 0.0


class Product:
    def __init__(self, data_dir: Path, args: argparse.Namespace) -> None:
        self.data_dir = data_dir
        self.args = args
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log = data_dir.parent / "standalone.log"

    def start(self) -> tuple[subprocess.Popen[bytes], int]:
        """Start the product; return the process and where its log starts."""
        env = {
            **os.environ,
            "PREPAID_DATA_DIR": str(self.data_dir),
            "PREPAID_HTTP_PORT": str(self.port),
            "PREPAID_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "PREPAID_SIM_DTUS": str(self.args.dtus),
            "PREPAID_SIM_METERS": str(self.args.meters),
            "PREPAID_SIM_SPEED": "1",
            "PREPAID_SIM_BASE_PORT": str(self.args.base_port),
            "PREPAID_COLLECTOR_LISTEN_PORT": "0",
            "PREPAID_LOG_FORMAT": "json",
        }
        for name in ("PREPAID_DATABASE_URL", "PREPAID_AMQP_URL"):
            env.pop(name, None)
        offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "standalone"],
                cwd=ROOT,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        return self.process, offset

    def serving(self) -> bool:
        self.alive()
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def said(self, text: str, offset: int) -> bool:
        self.alive()
        with self.log.open("rb") as log:
            log.seek(offset)
            return text.encode() in log.read()

    def alive(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"standalone exited:\n{tail}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def meters_read(client: httpx.Client, expected: int) -> bool:
    items: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = client.get("/api/v1/meters", params={"limit": 500, "offset": offset})
        if page.status_code != 200:
            return False
        batch = page.json()["items"]
        items += batch
        if len(batch) < 500:
            break
        offset += 500
    read = [m for m in items if m["last_reading"] is not None]
    return len(items) == expected and len(read) == expected


def run(args: argparse.Namespace) -> dict[str, Any]:
    meters = args.dtus * args.meters
    results: dict[str, Any] = {"machine": machine(), "parameters": vars(args)}
    with tempfile.TemporaryDirectory(prefix="bench-site-") as directory:
        product = Product(Path(directory) / "data", args)
        try:
            began = time.monotonic()
            product.start()
            serving = wait_for(product.serving, timeout=600, what="the API")
            # Meters are polled while the accounts are still being opened (DTUs go first).
            with httpx.Client(base_url=product.url, timeout=30) as client:
                token = client.post(
                    "/api/v1/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD}
                ).json()["access_token"]
                client.headers["Authorization"] = f"Bearer {token}"
                wait_for(lambda: meters_read(client, meters), timeout=600, what="every reading")
            every_read = time.monotonic() - began
            wait_for(lambda: product.said(READY_LINE, 0), timeout=1800, what="demo data")
            assert product.process is not None
            results["first_start"] = {
                "api_serving_s": round(serving, 1),
                "every_meter_read_s": round(every_read, 1),
                "demo_data_loaded_s": round(time.monotonic() - began, 1),
                "rss_mb_when_loaded": rss_mb(product.process.pid),
            }
            time.sleep(args.settle)
            results["first_start"]["rss_mb_after_settle"] = rss_mb(product.process.pid)
            product.stop()
            _, offset = product.start()
            serving = wait_for(product.serving, timeout=600, what="the API after a restart")
            loaded = wait_for(
                lambda: product.said(READY_LINE, offset), timeout=600, what="demo data again"
            )
            results["restart"] = {
                "api_serving_s": round(serving, 1),
                "demo_data_ready_s": round(serving + loaded, 1),
            }
        finally:
            product.stop()
    results["field"] = {"dtus": args.dtus, "meters_per_dtu": args.meters, "meters": meters}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtus", type=int, default=63)
    parser.add_argument("--meters", type=int, default=32)
    # Fixed ports: a restart onto the same field finds its demo data loaded (random ports
    # would move every DTU and load it again).
    parser.add_argument("--base-port", type=int, default=25020)
    parser.add_argument("--settle", type=float, default=60.0, help="s before the second RSS")
    parser.add_argument("--output", default=str(ROOT / "bench-results" / "site.json"))
    args = parser.parse_args()
    began = time.monotonic()
    write_results(args.output, run(args), began=began)


if __name__ == "__main__":
    main()
