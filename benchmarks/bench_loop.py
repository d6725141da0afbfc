"""The prepaid loop as a newcomer sees it in standalone mode, timed.

Starts the standalone wiring (SQLite, in-process bus, the default 10 x 8 simulator at 60x,
5 s polls) in this process, then measures: start-up including demo data, the time until
the first low-credit meter's relay is open, the age of the newest reading of every meter,
and the time from a top-up through the API to that relay closed again. Writes
bench-results/loop.json.

    make bench-loop
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from benchkit import machine, write_results
from prepaid_common.logs import configure_logging
from pydantic import SecretStr
from standalone.app import Standalone
from standalone.settings import StandaloneSettings

OUT = Path("bench-results/loop.json")


async def wait_for_relay(client: httpx.AsyncClient, meter: str, state: str) -> None:
    deadline = time.monotonic() + 300
    while (await client.get(f"/api/v1/meters/{meter}")).json()["relay"] != state:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{meter} never reached {state}")
        await asyncio.sleep(0.1)


async def main() -> dict[str, object]:
    configure_logging("ERROR", "text")
    with tempfile.TemporaryDirectory() as data:
        settings = StandaloneSettings(
            data_dir=Path(data),
            sim_base_port=0,
            collector_listen_port=0,
            token_secret=SecretStr("bench-loop-secret-0123456789abcdef"),
            admin_password=SecretStr("bench-loop-admin"),
        )
        began = time.monotonic()
        product = Standalone(settings)
        await product.start()
        started = time.monotonic() - began
        account = product.low_credit_accounts[0]
        meter = account.removeprefix("ACC-")
        try:
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=product.app), base_url="http://bench"
            ) as client:
                login = await client.post(
                    "/api/v1/auth/token",
                    data={"username": "admin", "password": "bench-loop-admin"},
                )
                client.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
                await wait_for_relay(client, meter, "open")
                tripped = time.monotonic() - began - started
                meters = (await client.get("/api/v1/meters", params={"limit": 500})).json()
                now = datetime.now(UTC)
                ages = [
                    (now - datetime.fromisoformat(m["last_reading"]["read_at"])).total_seconds()
                    for m in meters["items"]
                    if m["last_reading"]
                ]
                paid = time.monotonic()
                await client.post(
                    f"/api/v1/accounts/{account}/top-ups",
                    json={"amount": "50.00", "receipt": "BENCH-LOOP-1"},
                )
                await wait_for_relay(client, meter, "closed")
                restored = time.monotonic() - paid
        finally:
            await product.stop()
    return {
        "machine": machine(),
        "field": {
            "dtus": settings.sim_dtus,
            "meters_per_dtu": settings.sim_meters,
            "speed": settings.sim_speed,
            "poll_seconds": settings.poll_interval_seconds,
        },
        "startup_with_demo_data_s": round(started, 2),
        "first_low_credit_trip_after_start_s": round(tripped, 2),
        "meters_with_a_reading": len(ages),
        "meters": meters["total"],
        "newest_reading_age_max_s": round(max(ages), 2),
        "top_up_to_relay_closed_s": round(restored, 3),
    }


if __name__ == "__main__":
    began = time.monotonic()
    write_results(OUT, asyncio.run(main()), began=began)
