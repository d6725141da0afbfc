"""Demo data, loaded through the public API so it works the same against a cluster.

Every step is idempotent: running it again (every standalone start does) changes nothing
but the DTU addresses, which follow the simulator.

    python -m standalone.seed --gateway http://127.0.0.1:8000 --admin-password ... \
        --simulator-host 127.0.0.1 --base-port 15020 --dtus 10 --meters 8
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import httpx
from collector.profiles import load_profiles
from simulator import FieldSimulator

DEMO_PRICE = Decimal("1.5000")
LOW_CREDIT = Decimal("1.00")
NORMAL_CREDIT = Decimal("100.00")
DEMO_TENANTS = 3
# What the product prints once the demo data is in (tests of the demo wait for it).
DEMO_DATA_READY = "Demo data ready"


@dataclass(frozen=True)
class DemoMeter:
    meter_id: str
    unit_id: int
    profile: str


@dataclass(frozen=True)
class DemoDtu:
    dtu_id: str
    host: str
    port: int
    meters: Sequence[DemoMeter]


def account_for(meter_id: str) -> str:
    """One demo account per meter."""
    return f"ACC-{meter_id}"


def choose_low_credit(dtus: Sequence[DemoDtu]) -> set[str]:
    """Every fourth meter that has a relay starts with little credit, to show a trip."""
    profiles = load_profiles()
    with_relay = [
        meter.meter_id
        for dtu in dtus
        for meter in dtu.meters
        if meter.profile in profiles and profiles[meter.profile].has_relay
    ]
    return set(with_relay[::4])


def low_credit_accounts(dtus: Sequence[DemoDtu]) -> list[str]:
    """The demo's low-credit accounts, in the field's order."""
    low = choose_low_credit(dtus)
    return [account_for(m.meter_id) for dtu in dtus for m in dtu.meters if m.meter_id in low]


async def _ok(response: httpx.Response, *also_fine: int) -> httpx.Response:
    if response.status_code >= 400 and response.status_code not in also_fine:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path}: "
            f"{response.status_code} {response.text}"
        )
    return response


async def _credited(client: httpx.AsyncClient, account_id: str, timeout: float = 60) -> None:
    """Wait until billing has applied the opening top-up (payments reach it by the bus)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        account = (await _ok(await client.get(f"/api/v1/accounts/{account_id}"))).json()
        if Decimal(account["balance"]) > 0:
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"the opening credit of {account_id} did not arrive within {timeout} s")


async def login(client: httpx.AsyncClient, username: str, password: str) -> None:
    """Log in and keep the bearer token on the client."""
    response = await _ok(
        await client.post("/api/v1/auth/token", data={"username": username, "password": password})
    )
    client.headers["Authorization"] = f"Bearer {response.json()['access_token']}"


async def seed_demo(
    client: httpx.AsyncClient,
    dtus: Sequence[DemoDtu],
    *,
    tenant_password: str,
    concurrency: int = 8,
) -> list[str]:
    """Register DTUs and meters, open accounts with credit, create demo tenants.

    The field goes first, so every meter is polled while its account is being opened. Then
    ``concurrency`` accounts at a time: each waits for its opening credit to reach billing
    (over the bus) before its meter is bound, since a prepaid meter bound to an empty
    account is cut at once; done one by one, those waits made a 2,000-meter site take
    ten minutes.

    Returns the ids of the low-credit accounts.
    """
    low_credit_meters = choose_low_credit(dtus)
    for dtu in dtus:
        await _ok(
            await client.post(
                "/api/v1/dtus",
                json={
                    "id": dtu.dtu_id,
                    "name": f"Demo {dtu.dtu_id}",
                    "host": dtu.host,
                    "port": dtu.port,
                    "meters": [
                        {"id": m.meter_id, "unit_id": m.unit_id, "profile": m.profile}
                        for m in dtu.meters
                    ],
                },
            )
        )
    gate = asyncio.Semaphore(concurrency)

    async def open_account(meter: DemoMeter) -> None:
        account_id = account_for(meter.meter_id)
        credit = LOW_CREDIT if meter.meter_id in low_credit_meters else NORMAL_CREDIT
        async with gate:
            await _ok(
                await client.post(
                    "/api/v1/accounts",
                    json={
                        "id": account_id,
                        "name": f"Tenant of {meter.meter_id}",
                        "price_per_kwh": str(DEMO_PRICE),
                    },
                )
            )
            opening = await _ok(
                await client.post(
                    f"/api/v1/accounts/{account_id}/top-ups",
                    json={"amount": str(credit), "receipt": f"OPENING-{account_id}"},
                )
            )
            if opening.status_code == 201:  # new credit, not a repeat of an earlier run
                await _credited(client, account_id)
            await _ok(
                await client.post(
                    f"/api/v1/accounts/{account_id}/meters", json={"meter_id": meter.meter_id}
                )
            )

    meters = [meter for dtu in dtus for meter in dtu.meters]
    # A task group: one failure stops the others instead of leaving them running.
    async with asyncio.TaskGroup() as group:
        for meter in meters:
            group.create_task(open_account(meter))
    for index, meter in enumerate(meters[:DEMO_TENANTS]):
        await _ok(
            await client.post(
                "/api/v1/users",
                json={
                    "username": f"tenant{index + 1}",
                    "password": tenant_password,
                    "role": "tenant",
                    "account_ids": [account_for(meter.meter_id)],
                },
            ),
            409,
        )
    return low_credit_accounts(dtus)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Load demo data through the public API.")
    parser.add_argument("--gateway", default="http://127.0.0.1:8000")
    # From the environment by default: a password on a command line is visible in ps and in
    # the pod's spec.
    parser.add_argument(
        "--admin-password",
        default=os.environ.get("PREPAID_ADMIN_PASSWORD"),
        help="the admin's password (default: PREPAID_ADMIN_PASSWORD)",
    )
    parser.add_argument("--tenant-password", default="tenant-demo-1")
    parser.add_argument("--simulator-host", default="127.0.0.1")
    parser.add_argument("--base-port", type=int, default=15020)
    parser.add_argument("--dtus", type=int, default=10)
    parser.add_argument("--meters", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1, help="the simulator's --seed")
    args = parser.parse_args(argv)
    if not args.admin_password:
        parser.error("give --admin-password or set PREPAID_ADMIN_PASSWORD")

    async def run() -> None:
        # The simulator's layout is a pure function of its arguments: rebuild it here.
        field = FieldSimulator(args.dtus, args.meters, base_port=args.base_port, seed=args.seed)
        layout = [
            DemoDtu(
                dtu.dtu_id,
                args.simulator_host,
                args.base_port + number,
                [DemoMeter(m.meter_id, m.unit_id, m.profile) for m in dtu.meters],
            )
            for number, dtu in enumerate(field.dtus)
        ]
        async with httpx.AsyncClient(base_url=args.gateway, timeout=30) as client:
            await login(client, "admin", args.admin_password)
            low = await seed_demo(client, layout, tenant_password=args.tenant_password)
        print(f"seeded {sum(len(d.meters) for d in layout)} meters; low credit: {', '.join(low)}")

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
