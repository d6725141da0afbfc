"""The public API registers every DTU kind and meter address, and reads all meters now."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import httpx
from pydantic import SecretStr
from standalone.app import Standalone
from standalone.settings import StandaloneSettings
from testkit import wait_until
from testkit.field import Dlt645Meter, FakeBus, ModbusMeter, serve_raw


async def test_dtu_kinds_and_read_all_through_the_public_api(
    sqlite_url: str, tmp_path: Path
) -> None:
    product = Standalone(
        StandaloneSettings(
            data_dir=tmp_path / "data",
            database_url=sqlite_url,
            amqp_url="",
            simulator=False,
            collector_listen_port=0,
            token_secret=SecretStr("collector-api-test-secret-0123456789"),
            admin_password=SecretStr("collector-api-admin"),
        )
    )
    bus = FakeBus(
        modbus={1: ModbusMeter(unit=1)},
        dlt645={"000000000042": Dlt645Meter(address="000000000042")},
    )
    await product.start()
    api = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=product.app), base_url="http://test", timeout=30
    )
    try:
        token = (
            await api.post(
                "/api/v1/auth/token",
                data={"username": "admin", "password": "collector-api-admin"},
            )
        ).json()["access_token"]
        api.headers["Authorization"] = f"Bearer {token}"
        async with serve_raw(bus) as (host, port):
            response = await api.post(
                "/api/v1/dtus",
                json={
                    "id": "PUB1",
                    "name": "serial server",
                    "kind": "rtu-over-tcp",
                    "host": host,
                    "port": port,
                    "meters": [
                        {"id": "PUB1-01", "unit_id": 1, "profile": "reference-prepaid"},
                        {"id": "PUB1-42", "address": "000000000042", "profile": "dlt645-2007"},
                    ],
                },
            )
            assert response.status_code == 201, response.text
            dial_in = await api.post(
                "/api/v1/dtus",
                json={"id": "PUB2", "name": "4G DTU", "kind": "dtu-client", "meters": []},
            )
            assert dial_in.status_code == 201, dial_in.text
            assert dial_in.json()["registration"] == "LOGIN:PUB2"
            assert dial_in.json()["host"] is None

            queued = await api.post("/api/v1/meters/read-all")
            assert queued.status_code == 202, queued.text

            async def both_read() -> bool:
                for meter_id in ("PUB1-01", "PUB1-42"):
                    body = (await api.get(f"/api/v1/meters/{meter_id}")).json()
                    if not body.get("last_reading"):
                        return False
                return True

            await wait_until(both_read)
            dlt = (await api.get("/api/v1/meters/PUB1-42")).json()
            assert Decimal(dlt["last_reading"]["energy_kwh"]) == Decimal("2345.67")
            assert dlt["address"] == "000000000042"
    finally:
        await api.aclose()
        await product.stop()
