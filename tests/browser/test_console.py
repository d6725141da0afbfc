"""The operator's console in real Chromium: the dashboard, trip and close, open and sell, audit."""

from __future__ import annotations

import re

from browser.kit import ADMIN_PASSWORD, RELAY_METER, Product, screenshot, sign_in
from playwright.sync_api import BrowserContext, Page, expect


def signed_in(desktop: BrowserContext) -> Page:
    page = desktop.new_page()
    sign_in(page, "/", "admin", ADMIN_PASSWORD)  # / opens the console
    expect(page.get_by_role("heading", name="总览")).to_be_visible()
    return page


def test_the_dashboard_shows_the_site(desktop: BrowserContext) -> None:
    page = signed_in(desktop)
    expect(page.get_by_test_id("meters-online")).to_contain_text(re.compile(r"\d+ / 8"))
    expect(page.get_by_test_id("money-today")).to_contain_text("¥")
    expect(page.get_by_role("heading", name="今日收款（按渠道）")).to_be_visible()
    expect(page.get_by_role("img", name=re.compile("今日收款"))).to_be_visible()
    screenshot(page, "console-dashboard")
    for area, name in [
        ("电表", "console-meters"),
        ("采集器 (DTU)", "console-dtus"),
        ("账户", "console-accounts"),
        ("电价", "console-tariffs"),
        ("保电与限电", "console-supply"),
        ("站点策略", "console-policy"),
        ("用户与角色", "console-users"),
        ("操作日志", "console-audit"),
        ("催缴单", "console-dunning"),
    ]:
        page.get_by_role("navigation").get_by_role("link", name=area, exact=True).click()
        expect(page.get_by_role("heading", level=1, name=area)).to_be_visible()
        expect(page.locator("main [aria-busy]")).to_have_count(0)
        screenshot(page, name)


def test_an_operator_trips_and_closes_a_meter(desktop: BrowserContext) -> None:
    meter = RELAY_METER
    page = signed_in(desktop)
    page.get_by_role("navigation").get_by_role("link", name="电表", exact=True).click()
    page.get_by_role("link", name=meter, exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(meter)
    relay = page.get_by_test_id("relay")
    expect(relay).to_have_text("合闸")

    page.get_by_label("原因").first.fill("browser test: trip")
    page.get_by_role("button", name="拉闸（断电）").click()
    expect(page.get_by_role("status").filter(has_text="拉闸指令已下发")).to_be_visible()
    expect(relay).to_have_text("拉闸", timeout=30_000)
    expect(page.get_by_role("cell", name="成功").first).to_be_visible()
    screenshot(page, "console-meter-tripped")

    page.get_by_label("原因").first.fill("browser test: close")
    page.get_by_role("button", name="合闸（送电）").click()
    expect(relay).to_have_text("合闸", timeout=30_000)
    screenshot(page, "console-meter-closed")


def test_an_operator_opens_an_account_and_sells_at_the_counter(
    product: Product, desktop: BrowserContext
) -> None:
    page = signed_in(desktop)
    page.get_by_role("navigation").get_by_role("link", name="账户", exact=True).click()
    page.locator("summary", has_text="开户").click()
    form = page.get_by_role("form", name="开户")
    form.get_by_label("账户").fill("SHOP-101")
    form.get_by_label("名称").fill("一楼 101 奶茶店")
    form.get_by_label("单独电价（元/kWh）").fill("1.2000")
    form.get_by_label("分组").fill("F1")
    form.get_by_role("button", name="开户").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("SHOP-101")
    expect(page.get_by_test_id("balance")).to_have_text("¥0.00")

    counter = page.get_by_role("form", name="柜台售电")
    counter.get_by_label("金额").fill("88.00")
    counter.get_by_role("button", name="收款").click()
    receipt = page.get_by_test_id("receipt")
    expect(receipt).to_contain_text("¥88.00")
    expect(receipt).to_contain_text("SHOP-101")
    expect(page.get_by_test_id("balance")).to_have_text("¥88.00", timeout=15_000)
    screenshot(page, "console-account-receipt")

    # Both actions went through the public API and are in the audit log.
    page.get_by_role("navigation").get_by_role("link", name="操作日志", exact=True).click()
    rows = page.get_by_role("row").filter(has_text="SHOP-101")
    expect(rows.filter(has_text="account.open")).to_have_count(1)
    expect(rows.filter(has_text="account.top_up")).to_have_count(1)
    audit = product.admin.get("/api/v1/audit", params={"limit": 20}).json()["items"]
    assert {("account.open", "SHOP-101"), ("account.top_up", "SHOP-101")} <= {
        (e["action"], e["target"]) for e in audit
    }
