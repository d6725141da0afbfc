"""The product as a newcomer runs it: ``python -m standalone`` driven through the REST API.

Consumption trips a low-credit meter, a top-up closes it, bad input is refused, and a
``kill -9`` loses no balance or ledger entry.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from simulator import FieldSimulator
from standalone.seed import DemoDtu, DemoMeter, account_for, choose_low_credit
from testkit.processes import wait_for_demo_data

ROOT = Path(__file__).resolve().parents[2]
ADMIN_PASSWORD = "e2e-admin-password"
FIELD = dict(dtus=2, meters=4, seed=1)


def demo_layout() -> list[DemoDtu]:
    """The simulator's layout is a pure function of its settings: the test derives it too."""
    field = FieldSimulator(FIELD["dtus"], FIELD["meters"], seed=FIELD["seed"])
    return [
        DemoDtu(d.dtu_id, "-", 0, [DemoMeter(m.meter_id, m.unit_id, m.profile) for m in d.meters])
        for d in field.dtus
    ]


LOW_CREDIT_METERS = choose_low_credit(demo_layout())
LOW_CREDIT_METER = min(LOW_CREDIT_METERS)
LOW_CREDIT_ACCOUNT = account_for(LOW_CREDIT_METER)
ALL_METERS = [m.meter_id for d in demo_layout() for m in d.meters]
TENANT1_ACCOUNT = account_for(ALL_METERS[0])  # the seed links tenant1 to the first account
NORMAL_METER = next(m for m in ALL_METERS if m not in LOW_CREDIT_METERS)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    url: str
    log: Path


def start_product(data_dir: Path, port: int) -> Running:
    env = {
        **os.environ,
        "PREPAID_DATA_DIR": str(data_dir),
        "PREPAID_HTTP_PORT": str(port),
        "PREPAID_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "PREPAID_SIM_DTUS": str(FIELD["dtus"]),
        "PREPAID_SIM_METERS": str(FIELD["meters"]),
        "PREPAID_SIM_SEED": str(FIELD["seed"]),
        "PREPAID_SIM_BASE_PORT": "0",
        "PREPAID_SIM_SPEED": "900",
        "PREPAID_POLL_INTERVAL_SECONDS": "1",
        "PREPAID_COLLECTOR_LISTEN_PORT": "0",
        "PREPAID_LOG_FORMAT": "json",
    }
    env.pop("PREPAID_DATABASE_URL", None)
    env.pop("PREPAID_AMQP_URL", None)
    log = data_dir.parent / f"standalone-{port}.log"
    with log.open("ab") as output:  # the child keeps its own descriptor
        process = subprocess.Popen(
            [sys.executable, "-m", "standalone"],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"standalone exited early:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                wait_for_demo_data(process, log)
                return Running(process, url, log)
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise AssertionError(f"standalone did not serve within 90 s:\n{log.read_text()[-4000:]}")


def poll(probe: Any, *, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.25)
    raise AssertionError(f"{what} not seen within {timeout} s; last: {last!r}")


def token(client: httpx.Client, username: str, password: str) -> dict[str, str]:
    response = client.post("/api/v1/auth/token", data={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture
def product(tmp_path: Path) -> Iterator[Running]:
    running = start_product(tmp_path / "data", free_port())
    yield running
    if running.process.poll() is None:
        running.process.send_signal(signal.SIGTERM)
        try:
            running.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            running.process.kill()


def ledger_of(client: httpx.Client, account_id: str, auth: dict[str, str]) -> list[dict[str, Any]]:
    response = client.get(
        f"/api/v1/accounts/{account_id}/ledger", params={"limit": 500}, headers=auth
    )
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def balance_and_ledger(
    client: httpx.Client, account_id: str, auth: dict[str, str]
) -> tuple[Decimal, list[dict[str, Any]]]:
    """Read the balance and the ledger at one instant (retry while charges land between)."""
    for _ in range(50):
        first = client.get(f"/api/v1/accounts/{account_id}", headers=auth).json()["balance"]
        lines = ledger_of(client, account_id, auth)
        second = client.get(f"/api/v1/accounts/{account_id}", headers=auth).json()["balance"]
        if first == second:
            return Decimal(first), lines
    raise AssertionError("balance never stood still")


def test_consumption_trips_and_a_top_up_closes_the_meter(product: Running, tmp_path: Path) -> None:
    with httpx.Client(base_url=product.url, timeout=30) as client:
        admin = token(client, "admin", ADMIN_PASSWORD)

        # Readings arrive for every simulated meter, fresh.
        def all_read() -> list[dict[str, Any]] | None:
            items = client.get("/api/v1/meters", headers=admin).json()["items"]
            fresh = [m for m in items if m["last_reading"] is not None]
            return items if len(items) == 8 and len(fresh) == 8 else None

        meters = poll(all_read, timeout=60, what="a reading from every meter")
        now = datetime.now(UTC)
        for meter in meters:
            read_at = datetime.fromisoformat(meter["last_reading"]["read_at"])
            assert now - read_at < timedelta(minutes=1)
            assert meter["account_id"] == f"ACC-{meter['id']}"
            assert meter["online"] is True
            assert Decimal(meter["last_reading"]["energy_kwh"]) >= 0

        # The low-credit account runs out and its meter is tripped.
        def tripped() -> dict[str, Any] | None:
            meter = client.get(f"/api/v1/meters/{LOW_CREDIT_METER}", headers=admin).json()
            return meter if meter["relay"] == "open" else None

        poll(tripped, timeout=60, what="the low-credit meter tripped")
        account = client.get(f"/api/v1/accounts/{LOW_CREDIT_ACCOUNT}", headers=admin).json()
        assert Decimal(account["balance"]) <= 0
        assert account["supply"] == "off"

        # A top-up through the API closes it again.
        response = client.post(
            f"/api/v1/accounts/{LOW_CREDIT_ACCOUNT}/top-ups",
            json={"amount": "50.00", "receipt": "E2E-0001"},
            headers=admin,
        )
        assert response.status_code == 201, response.text
        replay = client.post(
            f"/api/v1/accounts/{LOW_CREDIT_ACCOUNT}/top-ups",
            json={"amount": "50.00", "receipt": "E2E-0001"},
            headers=admin,
        )
        assert replay.status_code == 200
        assert replay.json()["id"] == response.json()["id"]

        def closed() -> dict[str, Any] | None:
            meter = client.get(f"/api/v1/meters/{LOW_CREDIT_METER}", headers=admin).json()
            return meter if meter["relay"] == "closed" else None

        poll(closed, timeout=30, what="the meter closed after the top-up")

        # The receipt was credited once, and the balance is the sum of the ledger.
        lines = ledger_of(client, LOW_CREDIT_ACCOUNT, admin)
        top_ups = [line for line in lines if line["kind"] == "top_up"]
        assert [Decimal(line["amount"]) for line in top_ups] == [Decimal("50.00"), Decimal("1.00")]
        balance, newest_first = balance_and_ledger(client, LOW_CREDIT_ACCOUNT, admin)
        assert sum(Decimal(line["amount"]) for line in newest_first) == balance
        assert Decimal(newest_first[0]["balance_after"]) == balance


def test_bad_input_gets_a_clear_error_and_writes_nothing(product: Running) -> None:
    with httpx.Client(base_url=product.url, timeout=30) as client:
        admin = token(client, "admin", ADMIN_PASSWORD)
        url = f"/api/v1/accounts/{LOW_CREDIT_ACCOUNT}/top-ups"
        for amount in ("0", "-5.00", "abc", "1.234", "0.00"):
            response = client.post(
                url, json={"amount": amount, "receipt": f"BAD-{amount}"}, headers=admin
            )
            assert response.status_code == 422, (amount, response.text)
            assert "amount" in response.json()["detail"]
        assert (
            client.post(url, json={"amount": "5.00", "receipt": "   "}, headers=admin).status_code
            == 422
        )
        assert client.post(url, json={"receipt": "R"}, headers=admin).status_code == 422

        unknown = client.post(
            "/api/v1/accounts/NO-SUCH-ACCOUNT/top-ups",
            json={"amount": "5.00", "receipt": "R-404"},
            headers=admin,
        )
        assert unknown.status_code == 404
        assert "NO-SUCH-ACCOUNT" in unknown.json()["detail"]

        assert client.get("/api/v1/meters").status_code == 401
        assert client.get(f"/api/v1/accounts/{TENANT1_ACCOUNT}").status_code == 401
        assert (
            client.get("/api/v1/meters", headers={"Authorization": "Bearer nope"}).status_code
            == 401
        )
        assert (
            client.post(
                "/api/v1/auth/token", data={"username": "admin", "password": "wrong"}
            ).status_code
            == 401
        )

        # Nothing was written by any refused request: only the opening credit is there.
        payments = client.get(
            f"/api/v1/accounts/{LOW_CREDIT_ACCOUNT}/payments", headers=admin
        ).json()["items"]
        assert [p["reference"] for p in payments] == [f"OPENING-{LOW_CREDIT_ACCOUNT}"]

        # A tenant sees its own account and nothing else.
        tenant_password = (product.log.parent / "data" / "demo-tenant-password").read_text().strip()
        tenant = token(client, "tenant1", tenant_password)
        own = client.get(f"/api/v1/accounts/{LOW_CREDIT_ACCOUNT}", headers=tenant)
        assert own.status_code == 200
        assert client.get("/api/v1/accounts/ACC-DTU0001-02", headers=tenant).status_code == 404
        assert (
            client.get("/api/v1/accounts/ACC-DTU0001-02/ledger", headers=tenant).status_code == 404
        )
        mine = client.get("/api/v1/meters", headers=tenant).json()["items"]
        assert [m["id"] for m in mine] == [LOW_CREDIT_METER]
        assert client.get("/api/v1/meters/DTU0001-02", headers=tenant).status_code == 404
        assert (
            client.post(url, json={"amount": "5.00", "receipt": "T-1"}, headers=tenant).status_code
            == 403
        )
        assert (
            client.post(
                f"/api/v1/meters/{ALL_METERS[0]}/commands", json={"action": "close"}, headers=tenant
            ).status_code
            == 403
        )


def test_kill_9_loses_no_balance_or_ledger_entry(product: Running, tmp_path: Path) -> None:
    with httpx.Client(base_url=product.url, timeout=30) as client:
        admin = token(client, "admin", ADMIN_PASSWORD)
        account = account_for(NORMAL_METER)  # opened with 100.00
        response = client.post(
            f"/api/v1/accounts/{account}/top-ups",
            json={"amount": "12.34", "receipt": "KILL-1"},
            headers=admin,
        )
        assert response.status_code == 201

        def credited() -> list[dict[str, Any]] | None:
            lines = ledger_of(client, account, admin)
            return lines if any(line["memo"].endswith("KILL-1") for line in lines) else None

        poll(credited, timeout=30, what="the top-up in the ledger")
        # Let some consumption be charged too.
        poll(
            lambda: (
                len([x for x in ledger_of(client, account, admin) if x["kind"] == "consumption"])
                >= 2
            ),
            timeout=30,
            what="consumption charges",
        )
        before = {line["transaction_id"]: line for line in ledger_of(client, account, admin)}

    product.process.send_signal(signal.SIGKILL)
    product.process.wait(timeout=10)
    restarted = start_product(product.log.parent / "data", free_port())
    product.process = restarted.process  # the fixture stops this one
    with httpx.Client(base_url=restarted.url, timeout=30) as client:
        admin = token(client, "admin", ADMIN_PASSWORD)
        after = {line["transaction_id"]: line for line in ledger_of(client, account, admin)}
        # Every entry that existed survives unchanged; new ones may have been added.
        for transaction_id, line in before.items():
            assert after[transaction_id] == line
        balance = Decimal(
            client.get(f"/api/v1/accounts/{account}", headers=admin).json()["balance"]
        )
        lines = ledger_of(client, account, admin)
        assert balance == sum(Decimal(line["amount"]) for line in lines) or len(lines) > len(after)
        top_ups = [line for line in lines if line["kind"] == "top_up"]
        assert sorted(Decimal(line["amount"]) for line in top_ups) == [
            Decimal("12.34"),
            Decimal("100.00"),
        ]
