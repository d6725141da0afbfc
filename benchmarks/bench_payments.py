"""Provider notifications verified and credited by ONE payments process (``make bench-payments``).

One run, on local PostgreSQL and RabbitMQ:

1. a fresh database and a private bus prefix; ``python -m payments`` started as its own
   process, configured for WeChat Pay and Alipay with keys made for the run (the fake
   providers' keys: the notifications are signed exactly as the providers sign them);
2. N pending orders written straight into its tables (half WeChat Pay, half Alipay), their
   queries put off so reconciliation stays quiet;
3. the notifications built beforehand (not timed): one paid notification per order, a copy
   of half of them again (providers deliver twice, sometimes within a second), and forgeries
   (a WeChat Pay signature by an unknown key, an Alipay one with the app's own key), shuffled;
4. sent by C concurrent senders to payments' internal webhook routes (what the gateway
   forwards); timed until every answer is in and the outbox has published every
   ``payment.succeeded.v1`` to the broker. The payments process's CPU (user + system, from
   /proc) over the same span gives the CPU per notification.

Checks: every order credited once (one payment row each), every forgery refused, no order
flagged. Writes ``bench-results/payments.json``; exits non-zero only on errors.

``--loop`` measures instead a paid notification received to the relay reported closed: the
standalone product (SQLite, in-process bus, the simulator's 9600-baud buses) with its fake
providers and its public API on a socket; each low-credit meter, once cut, is paid through
the fake WeChat Pay or Alipay page, and the time runs from the fake posting the signed
notification to the meter's relay reported closed through the API. Writes
``bench-results/payments-loop.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import secrets
import socket
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from benchkit import machine, write_results
from Crypto.PublicKey import RSA
from payments.tables import orders
from prepaid_common.bus.rabbit import RabbitBus
from prepaid_common.logs import configure_logging
from pydantic import SecretStr
from simulator.payproviders import BackgroundServer, FakeKeys, FakeProviders
from simulator.payproviders.app import FakeOrder
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import create_async_engine
from standalone.app import Standalone
from standalone.settings import StandaloneSettings

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_DSN = os.environ.get(
    "PREPAID_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
AMQP_URL = os.environ.get("PREPAID_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
CREDENTIAL = secrets.token_urlsafe(32)
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def nearest_rank(ordered: list[float], share: float) -> float:
    """The nearest-rank percentile of sorted values (with few samples, p99 is the maximum)."""
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


async def wait_ready(url: str, process: asyncio.subprocess.Process) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(600):
            if process.returncode is not None:
                raise RuntimeError("payments exited at start")
            try:
                if (await client.get(f"{url}/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("payments did not become ready")


async def seed_orders(database_url: str, count: int) -> list[FakeOrder]:
    """Write ``count`` pending orders; return them as the providers would hold them, paid."""
    now = datetime.now(UTC).replace(microsecond=0)
    rows, held = [], []
    for index in range(count):
        provider = "wechatpay" if index % 2 == 0 else "alipay"
        no = f"PB{index:010d}{secrets.token_hex(4)}"
        fen = 1000 + index % 9000
        rows.append(
            {
                "out_trade_no": no,
                "account_id": f"BA{index:06d}",
                "channel": "wechat_native" if provider == "wechatpay" else "alipay_qr",
                "provider": provider,
                "amount": Decimal(fen) / 100,
                "status": "pending",
                "operator": "bench",
                "created_at": now,
                "expires_at": now + timedelta(hours=2),
                "pay_data": "{}",
                "refunded_amount": Decimal("0.00"),
                "queries": 0,
                "next_query_at": now + timedelta(days=1),
            }
        )
        held.append(
            FakeOrder(
                provider=provider,  # type: ignore[arg-type]
                out_trade_no=no,
                fen=fen,
                notify_url="",
                channel="native" if provider == "wechatpay" else "qr",
                state="SUCCESS",
                transaction_id=("4200" if provider == "wechatpay" else "2026") + f"{index:016d}",
                paid_fen=fen,
                paid_at=now,
            )
        )
    engine = create_async_engine(database_url)
    async with engine.begin() as connection:
        for start in range(0, len(rows), 1000):
            await connection.execute(insert(orders), rows[start : start + 1000])
    await engine.dispose()
    return held


def notifications(
    keys: FakeKeys, held: list[FakeOrder], *, duplicates: float, forgeries: float, seed: int
) -> list[tuple[str, str, dict[str, str], bytes]]:
    """Return (kind, provider, headers, body) of every notification to send, shuffled."""
    fake = FakeProviders(keys)
    stranger = FakeProviders(FakeKeys(**{**keys.__dict__, "wechat_platform": RSA.generate(2048)}))
    mine = FakeProviders(FakeKeys(**{**keys.__dict__, "alipay": keys.alipay_app}))
    chosen = random.Random(seed)
    batch: list[tuple[str, str, dict[str, str], bytes]] = []
    for order in held:
        headers, body = fake.paid_notification(order)
        batch.append(("paid", order.provider, headers, body))
        if chosen.random() < duplicates:
            batch.append(("duplicate", order.provider, headers, body))
        if chosen.random() < forgeries:
            forger = stranger if order.provider == "wechatpay" else mine
            headers, body = forger.paid_notification(order)
            batch.append(("forged", order.provider, headers, body))
    chosen.shuffle(batch)
    return batch


async def send_all(
    url: str, batch: list[tuple[str, str, dict[str, str], bytes]], concurrency: int
) -> list[tuple[str, str, int, str, float]]:
    """Send every notification; return (kind, provider, status, text, seconds) for each."""
    queue: asyncio.Queue[tuple[str, str, dict[str, str], bytes]] = asyncio.Queue()
    for item in batch:
        queue.put_nowait(item)
    answers: list[tuple[str, str, int, str, float]] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=url,
        timeout=60,
        limits=limits,
        headers={"X-Service-Credential": CREDENTIAL},
    ) as client:

        async def sender() -> None:
            while not queue.empty():
                kind, provider, headers, body = queue.get_nowait()
                started = time.perf_counter()
                answer = await client.post(
                    f"/internal/webhooks/{provider}", content=body, headers=headers
                )
                answers.append(
                    (kind, provider, answer.status_code, answer.text[:20],
                     time.perf_counter() - started)
                )  # fmt: skip

        await asyncio.gather(*(sender() for _ in range(concurrency)))
    return answers


async def run(args: argparse.Namespace) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:8]
    database = f"bench_payments_{run_id}"
    prefix = f"bench-{run_id}"
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{database}"')
    await admin.close()
    host = PG_ADMIN_DSN.split("@", 1)[1].split("/", 1)[0]
    user = PG_ADMIN_DSN.split("//", 1)[1].split("@", 1)[0]
    database_url = f"postgresql+asyncpg://{user}@{host}/{database}"
    keys = FakeKeys.generate()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process: asyncio.subprocess.Process | None = None
    with tempfile.TemporaryDirectory() as directory:
        merchant = keys.write_merchant_files(Path(directory))
        env = {
            **os.environ,
            **{f"PREPAID_{name.upper()}": value for name, value in merchant.items()},
            "PREPAID_ENVIRONMENT": "development",
            "PREPAID_DATABASE_URL": database_url,
            "PREPAID_AMQP_URL": AMQP_URL,
            "PREPAID_BUS_PREFIX": prefix,
            "PREPAID_SERVICE_PORT": str(port),
            "PREPAID_SERVICE_CREDENTIAL": CREDENTIAL,
            "PREPAID_PUBLIC_BASE_URL": "https://bench.example.com",
            "PREPAID_WECHATPAY_BASE_URL": "http://127.0.0.1:9",
            "PREPAID_ALIPAY_GATEWAY_URL": "http://127.0.0.1:9/gateway.do",
            "PREPAID_LOG_LEVEL": "ERROR",
            "PYTHONPATH": os.pathsep.join(
                str(ROOT / p) for p in ("libs", "services/payments", "services/simulator")
            ),
        }
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "payments", env=env, cwd=ROOT
            )
            await wait_ready(url, process)
            held = await seed_orders(database_url, args.orders)
            batch = notifications(
                keys, held, duplicates=args.duplicates, forgeries=args.forgeries, seed=args.seed
            )
            connection = await asyncpg.connect(PG_ADMIN_DSN.rsplit("/", 1)[0] + f"/{database}")
            cpu_before = cpu_seconds(process.pid)
            started = time.perf_counter()
            answers = await send_all(url, batch, args.concurrency)
            answered = time.perf_counter() - started
            while True:
                if not await connection.fetchval("SELECT count(*) FROM payments_outbox"):
                    break
                await asyncio.sleep(0.02)
            drained = time.perf_counter() - started
            cpu = cpu_seconds(process.pid) - cpu_before
            credited = await connection.fetchval("SELECT count(*) FROM payments_payments")
            distinct = await connection.fetchval(
                "SELECT count(DISTINCT reference) FROM payments_payments"
            )
            paid = await connection.fetchval(
                "SELECT count(*) FROM payments_orders WHERE status = 'paid'"
            )
            issues = await connection.fetchval("SELECT count(*) FROM payments_issues")
            await connection.close()
        finally:
            if process is not None:
                process.terminate()
                await asyncio.wait_for(process.wait(), timeout=30)
            bus = RabbitBus(AMQP_URL, prefix=prefix)
            try:
                await bus.start()
                await bus.delete_topology()
                await bus.close()
            except Exception as error:  # cleanup must not hide the run's own error
                print(f"bus cleanup failed: {error!r}", file=sys.stderr)
            admin = await asyncpg.connect(PG_ADMIN_DSN)
            await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            await admin.close()

    kinds = {
        kind: sum(1 for a in answers if a[0] == kind) for kind in ("paid", "duplicate", "forged")
    }
    refused = sum(1 for a in answers if a[0] == "forged" and a[2] >= 400)
    accepted = sum(1 for a in answers if a[0] != "forged" and a[2] in {200, 204})
    latencies = sorted(a[4] for a in answers)
    total = len(answers)
    checks = {
        "every order credited once": credited == distinct == paid == args.orders,
        "every forgery refused": refused == kinds["forged"],
        "every genuine notification answered received": accepted
        == kinds["paid"] + kinds["duplicate"],
        "nothing flagged": issues == 0,
    }
    return {
        "machine": machine(),
        "parameters": vars(args),
        "notifications": {**kinds, "total": total},
        "answered_seconds": round(answered, 3),
        "outbox_drained_seconds": round(drained, 3),
        "notifications_per_second": round(total / drained, 1),
        "credits_per_second": round(args.orders / drained, 1),
        "payments_cpu_seconds": round(cpu, 3),
        "cpu_ms_per_notification": round(1000 * cpu / total, 3),
        "latency_ms": {
            "p50": round(1000 * statistics.median(latencies), 2),
            "p99": round(1000 * nearest_rank(latencies, 0.99), 2),
            "max": round(1000 * latencies[-1], 2),
        },
        "credited": credited,
        "refused": refused,
        "checks": checks,
    }


async def run_loop(args: argparse.Namespace) -> dict[str, Any]:
    """Time paid notification -> relay reported closed on the standalone product."""
    configure_logging("ERROR", "text")
    public = BackgroundServer()
    with tempfile.TemporaryDirectory() as data:
        settings = StandaloneSettings(
            environment="development",  # the simulator's plain command envelope
            data_dir=Path(data),
            sim_dtus=args.dtus,
            sim_meters=args.meters,
            sim_speed=args.speed,
            sim_base_port=0,
            collector_listen_port=0,
            http_port=public.port,
            token_secret=SecretStr(secrets.token_urlsafe(32)),
            admin_password=SecretStr("bench-payments-admin"),
        )
        began = time.monotonic()
        product = Standalone(settings)
        await product.start()
        await public.start(product.app)
        started = time.monotonic() - began
        assert product.demo_payments is not None
        fake = product.demo_payments.fake
        samples: list[dict[str, Any]] = []
        try:
            async with (
                httpx.AsyncClient(base_url=public.url, timeout=60) as api,
                httpx.AsyncClient(timeout=60, follow_redirects=True) as phone,
            ):
                login = await api.post(
                    "/api/v1/auth/token",
                    data={"username": "admin", "password": "bench-payments-admin"},
                )
                api.headers["Authorization"] = f"Bearer {login.json()['access_token']}"

                async def relay(meter: str) -> str:
                    return str((await api.get(f"/api/v1/meters/{meter}")).json()["relay"])

                for index, account in enumerate(product.low_credit_accounts[: args.payments]):
                    meter = account.removeprefix("ACC-")
                    deadline = time.monotonic() + 600
                    while await relay(meter) != "open":
                        if time.monotonic() > deadline:
                            raise RuntimeError(f"{meter} was never cut")
                        await asyncio.sleep(0.2)
                    channel = "wechat_native" if index % 2 == 0 else "alipay_qr"
                    order = (
                        await api.post(
                            f"/api/v1/accounts/{account}/orders",
                            json={"channel": channel, "amount": "50.00"},
                        )
                    ).json()
                    no = order["out_trade_no"]
                    await phone.get(order.get("code_url") or order["qr_code"])
                    while await relay(meter) != "closed":
                        if time.monotonic() > deadline:
                            raise RuntimeError(f"{meter} was never closed")
                        await asyncio.sleep(0.02)
                    closed = time.monotonic()
                    samples.append(
                        {
                            "meter": meter,
                            "channel": channel,
                            "notification_answered_s": round(
                                fake.received_at[no] - fake.notified_at[no], 3
                            ),
                            "notification_to_relay_closed_s": round(
                                closed - fake.notified_at[no], 3
                            ),
                        }
                    )
        finally:
            await public.stop()
            await product.stop()
    latencies = sorted(s["notification_to_relay_closed_s"] for s in samples)
    return {
        "machine": machine(),
        "field": {
            "dtus": args.dtus,
            "meters_per_dtu": args.meters,
            "meters": args.dtus * args.meters,
            "speed": args.speed,
            "baud": 9600,
            "poll_seconds": settings.poll_interval_seconds,
        },
        "startup_with_demo_data_s": round(started, 1),
        "payments": len(samples),
        "notification_to_relay_closed_s": {
            "p50": statistics.median(latencies),
            "p99": nearest_rank(latencies, 0.99),
            "max": latencies[-1],
        },
        "samples": samples,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=4000)
    parser.add_argument("--duplicates", type=float, default=0.5, help="share sent twice")
    parser.add_argument("--forgeries", type=float, default=0.2, help="forged per order")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--loop", action="store_true", help="time notification -> relay closed")
    parser.add_argument("--dtus", type=int, default=10, help="--loop: simulated DTUs")
    parser.add_argument("--meters", type=int, default=8, help="--loop: meters per DTU")
    parser.add_argument("--speed", type=float, default=60.0, help="--loop: simulator speed")
    parser.add_argument("--payments", type=int, default=8, help="--loop: cut meters to pay")
    parser.add_argument("--output", default="")
    args = parser.parse_args()
    began = time.monotonic()
    name = "payments-loop.json" if args.loop else "payments.json"
    output = args.output or str(ROOT / "bench-results" / name)
    if args.loop:
        write_results(output, asyncio.run(run_loop(args)), began=began)
        return
    results = asyncio.run(run(args))
    write_results(output, results, began=began)
    if not all(results["checks"].values()):
        sys.exit("a check failed: " + ", ".join(k for k, v in results["checks"].items() if not v))


if __name__ == "__main__":
    main()
