"""The public app's guards: a body limit before parsing, security headers, CORS only for
configured origins, Swagger UI from local files, bounded metric labels, metrics kept off the
public port when asked, and a SQLite file only its owner can read."""

from __future__ import annotations

import stat
from collections.abc import AsyncIterator
from pathlib import Path

from prepaid_common.db import create_engine
from prepaid_common.metrics import HTTP_REQUESTS
from testkit.gateway import gateway_on, public_client

MIB = 1024 * 1024


async def test_a_body_over_the_limit_is_refused_before_it_is_read(tmp_path: Path) -> None:
    async with gateway_on(tmp_path) as service, public_client(service) as client:
        big = b"x" * (2 * MIB)
        for path in ("/api/v1/auth/token", "/api/v1/webhooks/wechat", "/api/v1/accounts"):
            refused = await client.post(path, content=big)
            assert refused.status_code == 413, (path, refused.text)
            assert refused.json()["code"] == "too_large"

        async def chunks() -> AsyncIterator[bytes]:
            # No Content-Length: counted as it arrives, refused once past the limit.
            for _ in range(40):
                yield b"y" * 65536

        streamed = await client.post("/api/v1/auth/token", content=chunks())
        assert streamed.status_code == 413


async def test_answers_carry_security_headers_and_hsts_only_when_configured(
    tmp_path: Path,
) -> None:
    async with gateway_on(tmp_path) as service, public_client(service) as client:
        answer = await client.get("/api/v1/me")
        assert answer.status_code == 401
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["referrer-policy"] == "no-referrer"
        assert "default-src 'none'" in answer.headers["content-security-policy"]
        assert "strict-transport-security" not in answer.headers
        assert "access-control-allow-origin" not in answer.headers
        preflight = await client.options(
            "/api/v1/me",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
        )
        assert "access-control-allow-origin" not in preflight.headers
    async with (
        gateway_on(
            tmp_path / "tls",
            hsts_seconds=31536000,
            cors_origins=["https://console.example"],
        ) as service,
        public_client(service) as client,
    ):
        answer = await client.get("/api/v1/me", headers={"Origin": "https://console.example"})
        assert answer.headers["strict-transport-security"] == "max-age=31536000"
        assert answer.headers["access-control-allow-origin"] == "https://console.example"
        preflight = await client.options(
            "/api/v1/me",
            headers={
                "Origin": "https://evil.example",
                "Access-Control-Request-Method": "GET",
            },
        )
        assert "access-control-allow-origin" not in preflight.headers


async def test_swagger_ui_is_served_from_local_files(tmp_path: Path) -> None:
    async with gateway_on(tmp_path) as service, public_client(service) as client:
        page = await client.get("/docs")
        assert page.status_code == 200
        assert "/docs-assets/swagger-ui-bundle.js" in page.text
        assert "cdn" not in page.text.lower()
        for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
            assert (await client.get(f"/docs-assets/{asset}")).status_code == 200


def _methods_and_routes() -> set[tuple[str, str]]:
    return {
        (sample.labels["method"], sample.labels["route"])
        for metric in HTTP_REQUESTS.collect()
        for sample in metric.samples
        if sample.labels.get("app") == "gateway"
    }


async def test_metric_labels_stay_bounded_whatever_a_client_sends(tmp_path: Path) -> None:
    async with gateway_on(tmp_path) as service, public_client(service) as client:
        for n in range(5):
            await client.request(f"BREW{n}", "/api/v1/me")
            await client.get(f"/no/such/path/{n}")
    seen = _methods_and_routes()
    assert not any(method.startswith("BREW") for method, _ in seen)
    assert ("other", "/api/v1/me") in seen or ("other", "/me") in seen
    assert not any(route.startswith("/no/such") for _, route in seen)
    assert ("GET", "unmatched") in seen


async def test_metrics_can_be_kept_off_the_public_port(tmp_path: Path) -> None:
    async with gateway_on(tmp_path) as service, public_client(service) as client:
        assert (await client.get("/metrics")).status_code == 200
    async with (
        gateway_on(tmp_path / "cluster", public_metrics=False) as service,
        public_client(service) as client,
    ):
        assert (await client.get("/metrics")).status_code == 404


async def test_the_sqlite_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "data" / "prepaid.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    async with engine.begin() as connection:
        await connection.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    await engine.dispose()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    (tmp_path / "old.db").touch(mode=0o644)
    create_engine(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")
    assert stat.S_IMODE((tmp_path / "old.db").stat().st_mode) == 0o600
