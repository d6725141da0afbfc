"""What the browser tests share: the demo field they derive, the product handle, page helpers."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from collector.profiles import load_profiles
from playwright.sync_api import Browser, Page, Playwright
from simulator import FieldSimulator
from standalone.seed import DemoDtu, DemoMeter, account_for, choose_low_credit
from testkit.processes import wait_for_demo_data

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
ADMIN_PASSWORD = "browser-admin-password"
TENANT_PASSWORD = "browser-tenant-password"
FIELD = {"dtus": 2, "meters": 4, "seed": 1}
CHROMIUM = os.environ.get("PREPAID_TEST_CHROMIUM", "/usr/bin/chromium")
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
DESKTOP = {"viewport": {"width": 1366, "height": 900}}


def demo_layout() -> list[DemoDtu]:
    """The simulator's layout is a pure function of its settings: the tests derive it too."""
    field = FieldSimulator(FIELD["dtus"], FIELD["meters"], seed=FIELD["seed"])
    return [
        DemoDtu(d.dtu_id, "-", 0, [DemoMeter(m.meter_id, m.unit_id, m.profile) for m in d.meters])
        for d in field.dtus
    ]


ALL_METERS = [m.meter_id for d in demo_layout() for m in d.meters]
LOW_CREDIT_METERS = choose_low_credit(demo_layout())
LOW_CREDIT_ACCOUNT = account_for(min(LOW_CREDIT_METERS))
TENANT1_ACCOUNT = account_for(ALL_METERS[0])  # the seed links tenant1 to the first account
TENANT2_ACCOUNT = account_for(ALL_METERS[1])
NORMAL_METERS = [m for m in ALL_METERS if m not in LOW_CREDIT_METERS]
# A meter with a relay whose account keeps its credit: an operator may trip and close it.
RELAY_METER = next(
    m.meter_id
    for d in demo_layout()
    for m in d.meters
    if load_profiles()[m.profile].has_relay and m.meter_id in NORMAL_METERS
)


@dataclass
class Product:
    url: str
    admin: httpx.Client

    def tenant_for(self, account_id: str) -> str:
        """Create (once) a tenant who sees only ``account_id``; answer the user name."""
        username = f"t-{account_id.lower()}"
        response = self.admin.post(
            "/api/v1/users",
            json={
                "username": username,
                "password": TENANT_PASSWORD,
                "role": "tenant",
                "account_ids": [account_id],
            },
        )
        assert response.status_code in (201, 409), response.text
        return username


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def chromium_or_skip() -> str:
    if Path(CHROMIUM).exists() or shutil.which(CHROMIUM):
        return CHROMIUM
    message = f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def wait_until_serving(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    """Wait for the demo tenants to exist: the seed is the last step of start-up."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"standalone exited early:\n{log.read_text()[-4000:]}")
        try:
            response = httpx.post(
                f"{url}/api/v1/auth/token",
                data={"username": "tenant1", "password": TENANT_PASSWORD},
                timeout=2,
            )
            if response.status_code == 200:
                wait_for_demo_data(process, log)
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise AssertionError(f"standalone did not serve within 90 s:\n{log.read_text()[-4000:]}")


def launch(playwright: Playwright) -> Browser:
    # --no-sandbox: CI containers run as root, where Chromium's sandbox cannot start.
    return playwright.chromium.launch(executable_path=chromium_or_skip(), args=["--no-sandbox"])


def screenshot(page: Page, name: str) -> None:
    """Keep a picture of the page as a test artefact."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def sign_in(page: Page, path: str, username: str, password: str) -> None:
    """Open ``path`` and sign in through its form (labels in Chinese, the default)."""
    page.goto(path)
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(password)
    page.get_by_role("button", name="登录").click()
