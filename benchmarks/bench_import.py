"""Bulk import rate (``make bench-import``): N meters with one account each through the
public API of the single-site product, as an operator uploads them.

One XLSX file of N rows (meter, DTU, unit id, profile, account, tenant name, price; 240
meters per DTU), built once; then on an empty product:

1. ``POST /api/v1/imports/check`` (the dry run): seconds;
2. ``POST /api/v1/imports`` (check again, then write): seconds, and meters per second;
3. the same file applied again (everything "unchanged"): seconds.

The product runs in-process (SQLite, the in-process bus) unless ``--database-url`` and
``--amqp-url`` name PostgreSQL and RabbitMQ. Writes ``bench-results/import.json``; exits
non-zero only on errors, never on a missed target (N meters in under a minute).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import openpyxl  # type: ignore[import-untyped]
from benchkit import machine, write_results
from pydantic import SecretStr
from standalone.app import Standalone
from standalone.settings import StandaloneSettings

HEADER = ["表号", "集中器", "IP", "端口", "从站号", "型号", "户号", "户名", "单价"]
PER_DTU = 240


def build_file(count: int) -> bytes:
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("表计")
    sheet.append(HEADER)
    for index in range(count):
        dtu, unit = divmod(index, PER_DTU)
        sheet.append(
            [
                f"BM{index:06d}",
                f"BD{dtu:04d}",
                f"10.{dtu // 250}.{dtu % 250}.1",
                502,
                unit + 1,
                "reference-prepaid",
                f"BA{index:06d}",
                f"商户{index}",
                0.85,
            ]
        )
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    data = build_file(args.meters)
    with tempfile.TemporaryDirectory() as directory:
        extra: dict[str, Any] = {}
        if args.database_url:
            extra = {"database_url": args.database_url, "amqp_url": args.amqp_url}
        product = Standalone(
            StandaloneSettings(
                data_dir=Path(directory),
                simulator=False,
                collector_listen_port=0,
                token_secret=SecretStr("bench-import-secret-0123456789abcdef"),
                admin_password=SecretStr("bench-import-admin"),
                **extra,
            )
        )
        await product.start()
        try:
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=product.app),
                base_url="http://bench",
                timeout=600,
            ) as client:
                login = await client.post(
                    "/api/v1/auth/token",
                    data={"username": "admin", "password": "bench-import-admin"},
                )
                client.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
                files = {"file": ("bench.xlsx", data)}
                began = time.monotonic()
                check = await client.post("/api/v1/imports/check", files=files)
                check_seconds = time.monotonic() - began
                assert check.status_code == 200, check.text
                assert check.json()["problems"] == [], check.json()["problems"][:5]
                began = time.monotonic()
                applied = await client.post("/api/v1/imports", files=files)
                apply_seconds = time.monotonic() - began
                assert applied.status_code == 200, applied.text
                began = time.monotonic()
                again = await client.post("/api/v1/imports", files=files)
                again_seconds = time.monotonic() - began
                assert again.status_code == 200, again.text
                meters = (await client.get("/api/v1/meters", params={"limit": 1})).json()
                accounts = (await client.get("/api/v1/accounts", params={"limit": 1})).json()
        finally:
            await product.stop()
    return {
        "backend": "postgres-rabbitmq" if args.database_url else "sqlite-inprocess",
        "meters": args.meters,
        "file_bytes": len(data),
        "new": applied.json()["new"],
        "registered": {"meters": meters["total"], "accounts": accounts["total"]},
        "check_seconds": round(check_seconds, 2),
        "apply_seconds": round(apply_seconds, 2),
        "apply_meters_per_second": round(args.meters / apply_seconds),
        "again_seconds": round(again_seconds, 2),
        "under_a_minute": apply_seconds < 60,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meters", type=int, default=10_000)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--amqp-url", default="")
    parser.add_argument("--output", default="bench-results/import.json")
    args = parser.parse_args()
    began = time.monotonic()
    results = {"machine": machine(), **asyncio.run(run(args))}
    write_results(args.output, results, began=began)


if __name__ == "__main__":
    main()
