"""Sealed commands and relay truth, measured. Writes bench-results/control.json.

1. **Seal and open**: CPU per command of ``prepaid_common.sealing`` (what control spends
   sealing, what a collector spends verifying), 3DES and AES-128, over ``--commands``
   commands each (a trip with its command id, as control seals them).
2. **Convergence with ignored writes**: the product in this process (standalone wiring:
   SQLite, in-process bus, Modbus TCP to the simulator) with ``--dtus`` x ``--meters``
   simulated meters, every relay meter acknowledging ``--ignore`` of its relay writes
   without carrying them out; every account is refunded to zero at once (a mass cut), then
   topped up at once (a mass restore). For each phase: the time until each meter's relay
   (as the simulator holds it) agrees with its decision, p50 / p99 / max, the meters left
   behind after ``--deadline`` seconds (none expected), and the re-issues control made.
   The reconciliation runs with the shipped defaults (first re-issue after 10 s, doubling).

    make bench-control
    make bench-control BENCH_ARGS="--dtus 4 --meters 10 --commands 2000"
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from benchkit import machine, write_results
from prepaid_common.logs import configure_logging
from prepaid_common.sealing import ALGORITHMS, Command, KeyRing, open_text, seal_text
from pydantic import SecretStr
from standalone.app import Standalone
from standalone.settings import StandaloneSettings

OUT = Path("bench-results/control.json")
ADMIN = "bench-control-admin"


def seal_and_open(commands: int) -> dict[str, Any]:
    """CPU microseconds per seal and per open, for each algorithm."""
    ring = KeyRing({1: bytes(range(16))})
    issued = datetime.now(UTC)
    expires = issued + timedelta(minutes=2)
    figures: dict[str, Any] = {"commands": commands}
    for algorithm in ALGORITHMS:
        batch = [
            Command(
                f"DTU{n % 1000:04d}-{n % 8:02d}",
                "trip",
                n + 1,
                issued,
                expires,
                {"command_id": f"00000000-0000-4000-8000-{n:012d}"},
                algorithm,
            )
            for n in range(commands)
        ]
        began = time.process_time()
        sealed = [seal_text(command, ring) for command in batch]
        sealing = time.process_time() - began
        began = time.process_time()
        for command, text in zip(batch, sealed, strict=True):
            open_text(text, ring, meter_id=command.meter_id, now=issued, last_counter=0)
        opening = time.process_time() - began
        figures[algorithm] = {
            "seal_us_per_command": round(sealing / commands * 1e6, 1),
            "open_us_per_command": round(opening / commands * 1e6, 1),
            "envelope_bytes": len(sealed[0]) * 3 // 4,
        }
    return figures


def spread(seconds: list[float]) -> dict[str, float]:
    if not seconds:
        return {}
    ordered = sorted(seconds)
    return {
        "p50_s": round(statistics.median(ordered), 2),
        "p99_s": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 2),
        "max_s": round(ordered[-1], 2),
    }


async def converge(
    product: Standalone, *, wanted: str, deadline: float, began: float
) -> dict[str, Any]:
    """Wait until every relay meter's relay is ``wanted``; time each one."""
    assert product.simulator is not None
    meters = [
        m for dtu in product.simulator.dtus for m in dtu.meters if m.profile == "reference-prepaid"
    ]
    reached: dict[str, float] = {}
    while len(reached) < len(meters) and time.monotonic() - began < deadline:
        for meter in meters:
            if meter.meter_id not in reached and meter.relay == wanted:
                reached[meter.meter_id] = time.monotonic() - began
        await asyncio.sleep(0.05)
    return {
        "meters": len(meters),
        "left_behind": len(meters) - len(reached),
        **spread(list(reached.values())),
    }


async def convergence(args: argparse.Namespace) -> dict[str, Any]:
    """The mass cut and the mass restore with a share of relay writes ignored."""
    with tempfile.TemporaryDirectory() as data:
        settings = StandaloneSettings(
            data_dir=Path(data),
            sim_dtus=args.dtus,
            sim_meters=args.meters,
            sim_base_port=0,
            sim_speed=1.0,
            demo_data=False,
            collector_listen_port=0,
            token_secret=SecretStr("bench-control-secret-0123456789abcdef"),
            admin_password=SecretStr(ADMIN),
        )
        product = Standalone(settings)
        await product.start()
        try:
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=product.app), base_url="http://bench", timeout=60
            ) as api:
                login = await api.post(
                    "/api/v1/auth/token", data={"username": "admin", "password": ADMIN}
                )
                api.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
                return await _run(product, api, args)
        finally:
            await product.stop()


async def _run(
    product: Standalone, api: httpx.AsyncClient, args: argparse.Namespace
) -> dict[str, Any]:
    assert product.simulator is not None
    accounts: list[str] = []
    for dtu in product.simulator.dtus:
        (await api.post("/api/v1/dtus", json=dtu.registration())).raise_for_status()
        for meter in dtu.meters:
            if meter.profile != "reference-prepaid":
                continue
            account = f"ACC-{meter.meter_id}"
            body = {"id": account, "name": account, "price_per_kwh": "1.00"}
            (await api.post("/api/v1/accounts", json=body)).raise_for_status()
            top_up = {"amount": "100.00", "receipt": f"OPEN-{account}"}
            (await api.post(f"/api/v1/accounts/{account}/top-ups", json=top_up)).raise_for_status()
            accounts.append(account)
    for account in accounts:
        # Billing credits the opening top-ups from the bus: no event here to wait on.
        while Decimal((await api.get(f"/api/v1/accounts/{account}")).json()["balance"]) <= 0:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        meter_id = account.removeprefix("ACC-")
        response = await api.post(f"/api/v1/accounts/{account}/meters", json={"meter_id": meter_id})
        response.raise_for_status()
    for dtu in product.simulator.dtus:
        for meter in dtu.meters:
            meter.relay_write_ignore_rate = args.ignore
    results: dict[str, Any] = {"ignored_write_share": args.ignore, "accounts": len(accounts)}

    began = time.monotonic()
    for account in accounts:
        balance = (await api.get(f"/api/v1/accounts/{account}")).json()["balance"]
        refund = {"amount": balance, "key": f"bench-refund-{account}", "reason": "bench"}
        (await api.post(f"/api/v1/accounts/{account}/refunds", json=refund)).raise_for_status()
    results["requests_posted_s"] = round(time.monotonic() - began, 2)
    results["mass_cut"] = await converge(
        product, wanted="open", deadline=args.deadline, began=began
    )

    began = time.monotonic()
    for account in accounts:
        top_up = {"amount": "50.00", "receipt": f"BENCH-{account}"}
        (await api.post(f"/api/v1/accounts/{account}/top-ups", json=top_up)).raise_for_status()
    results["mass_restore"] = await converge(
        product, wanted="closed", deadline=args.deadline, began=began
    )
    page = await product.upstreams.control.get("/internal/commands", limit=500)
    results["reconcile_reissues_in_last_500_commands"] = sum(
        1 for c in page["items"] if c["origin"] == "reconcile"
    )
    ignored = sum(1 for c in page["items"] if c["status"] != "succeeded" or c["attempts"] > 1)
    results["commands_with_a_failed_attempt_in_last_500"] = ignored
    return results


async def main(args: argparse.Namespace) -> dict[str, Any]:
    configure_logging("ERROR", "text")
    return {
        "machine": machine(),
        "seal_and_open": seal_and_open(args.commands),
        "ignored_writes": await convergence(args),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=5000)
    parser.add_argument("--dtus", type=int, default=8)
    parser.add_argument("--meters", type=int, default=10)
    parser.add_argument("--ignore", type=float, default=0.05)
    parser.add_argument("--deadline", type=float, default=600.0)
    parser.add_argument("--output", default=str(OUT))
    began = time.monotonic()
    arguments = parser.parse_args()
    write_results(arguments.output, asyncio.run(main(arguments)), began=began)
