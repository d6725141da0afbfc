"""The product as a newcomer runs it (``python -m standalone``), driven in real Chromium.

One product and one browser serve every test of a module; each test takes fresh browser
contexts, so no login or storage leaks between them. With the simulator on, WeChat Pay and
Alipay are the demo's fake providers, as under ``make run``. Screenshots go to
test-artifacts/browser/ (looked at, not compared).
Without Chromium the tests are skipped, except in CI, where that is a failure.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
from browser.kit import (
    ADMIN_PASSWORD,
    DESKTOP,
    FIELD,
    PHONE,
    ROOT,
    TENANT_PASSWORD,
    Product,
    chromium_or_skip,
    free_port,
    launch,
    wait_until_serving,
)
from playwright.sync_api import Browser, BrowserContext, sync_playwright


@pytest.fixture(scope="module")
def product(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Product]:
    """The standalone product with its simulator and demo data, on a free port (one per
    module, so it is not left consuming beside the other tiers' tests)."""
    chromium_or_skip()
    data_dir = tmp_path_factory.mktemp("browser") / "data"
    data_dir.mkdir()
    (data_dir / "demo-tenant-password").write_text(TENANT_PASSWORD + "\n")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
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
    log = data_dir.parent / "standalone.log"
    with contextlib.ExitStack() as stack:
        with log.open("ab") as output:  # the child keeps its own descriptor
            process = subprocess.Popen(
                [sys.executable, "-m", "standalone"],
                cwd=ROOT,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        stack.callback(stop, process)
        wait_until_serving(process, url, log)
        admin = stack.enter_context(httpx.Client(base_url=url, timeout=30))
        response = admin.post(
            "/api/v1/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD}
        )
        assert response.status_code == 200, response.text
        admin.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
        yield Product(url=url, admin=admin)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


# Per module, not per session: Playwright's synchronous API holds this thread's event loop
# while it runs, and the async tests of the other tiers, run after these, need it free.
@pytest.fixture(scope="module")
def browser(product: Product) -> Iterator[Browser]:
    del product  # started first, so a missing Chromium skips before the browser is launched
    with sync_playwright() as playwright:
        launched = launch(playwright)
        yield launched
        launched.close()


@pytest.fixture
def phone(browser: Browser, product: Product) -> Iterator[BrowserContext]:
    """A phone-sized browser context on the product."""
    context = browser.new_context(base_url=product.url, locale="zh-CN", **PHONE)  # type: ignore[arg-type]
    context.set_default_timeout(15_000)
    yield context
    context.close()


@pytest.fixture
def desktop(browser: Browser, product: Product) -> Iterator[BrowserContext]:
    """An office-PC-sized browser context on the product."""
    context = browser.new_context(base_url=product.url, locale="zh-CN", **DESKTOP)  # type: ignore[arg-type]
    context.set_default_timeout(15_000)
    yield context
    context.close()
