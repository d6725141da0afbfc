"""The tenant's phone site in real Chromium: balance falling, a cut, a payment, the power back."""

from __future__ import annotations

import re
from decimal import Decimal

from browser.kit import (
    ADMIN_PASSWORD,
    DESKTOP,
    LOW_CREDIT_ACCOUNT,
    TENANT1_ACCOUNT,
    TENANT2_ACCOUNT,
    TENANT_PASSWORD,
    Product,
    screenshot,
    sign_in,
)
from playwright.sync_api import Browser, BrowserContext, Page, expect


def yuan(text: str) -> Decimal:
    """The amount in '¥1,234.56' or '-¥0.83'."""
    return Decimal(re.sub(r"[^0-9.\-]", "", text))


def tab(page: Page, name: str) -> None:
    """Open a page from the tab bar at the bottom."""
    page.get_by_role("navigation").get_by_role("link", name=name).click()


def online_payment_enabled(product: Product) -> bool:
    response = product.admin.get("/api/v1/payment-channels")
    return response.status_code == 200 and any(c["enabled"] for c in response.json())


# Notes, from inside the page, the milliseconds from navigation start to the first screen.
FIRST_SCREEN_CLOCK = """
new MutationObserver((_, observer) => {
  if (window.__loginShown === undefined && document.querySelector("form button[type=submit]")) {
    window.__loginShown = performance.now();
  }
  const balance = document.querySelector("[data-testid=balance]");
  if (balance && balance.textContent.includes("¥")) {
    window.__balanceShown = performance.now();
    observer.disconnect();
  }
}).observe(document, { childList: true, subtree: true, characterData: true });
"""


def test_the_first_screen_is_up_within_a_second(phone: BrowserContext) -> None:
    page = phone.new_page()
    page.add_init_script(FIRST_SCREEN_CLOCK)
    page.goto("/m/")
    expect(page.get_by_role("button", name="登录")).to_be_visible()
    shown = page.evaluate("window.__loginShown")
    assert shown < 1000, f"the phone site's sign-in screen took {shown:.0f} ms"
    # For a tenant already signed in, the first screen is the balance.
    sign_in(page, "/m/", "tenant2", TENANT_PASSWORD)
    expect(page.get_by_test_id("balance")).to_be_visible()
    page.reload()
    expect(page.get_by_test_id("balance")).to_have_text(re.compile("¥"))
    shown = page.evaluate("window.__balanceShown")
    assert shown < 1000, f"the balance took {shown:.0f} ms to show"


def test_a_tenant_sees_the_balance_fall_and_the_usage(phone: BrowserContext) -> None:
    page = phone.new_page()
    sign_in(page, "/m/", "tenant2", TENANT_PASSWORD)
    balance = page.get_by_test_id("balance")
    expect(balance).to_have_text(re.compile(r"¥"))
    expect(page.get_by_text(TENANT2_ACCOUNT)).to_be_visible()
    first = balance.inner_text()
    screenshot(page, "m-home")
    # The page refreshes itself; the simulator's consumption lowers the balance.
    expect(balance).not_to_have_text(first, timeout=60_000)
    assert yuan(balance.inner_text()) < yuan(first)

    tab(page, "用电")
    expect(page.get_by_role("img", name=re.compile("近 30 天每日电费"))).to_be_visible()
    page.get_by_role("button", name="电量").click()
    expect(page.get_by_role("img", name=re.compile("近 30 天每日电量"))).to_be_visible()
    page.get_by_role("button", name="每月用电").click()
    expect(page.get_by_role("img", name=re.compile("近 12 个月电量"))).to_be_visible()
    page.get_by_label("电表").select_option(TENANT2_ACCOUNT.removeprefix("ACC-"))  # one meter
    expect(page.get_by_role("img", name=re.compile("近 12 个月电量"))).to_be_visible()
    expect(page.get_by_text(re.compile(r"合计 [\d.]+ kWh"))).to_be_visible()
    screenshot(page, "m-usage")

    tab(page, "记录")
    expect(page.get_by_test_id("payments")).to_contain_text("现金")
    expect(page.get_by_test_id("ledger")).to_contain_text("用电扣费")
    screenshot(page, "m-history")

    page.get_by_role("button", name="English").click()
    expect(page.get_by_role("heading", name="Payments")).to_be_visible()
    tab(page, "Home")
    expect(page.get_by_text("Balance", exact=True)).to_be_visible()
    screenshot(page, "m-home-english")
    page.get_by_role("button", name="中文").click()
    expect(page.get_by_text("当前余额")).to_be_visible()


def test_a_cut_tenant_pays_and_sees_the_power_come_back(
    product: Product, phone: BrowserContext, desktop: BrowserContext
) -> None:
    assert TENANT1_ACCOUNT == LOW_CREDIT_ACCOUNT  # the seed gives tenant1 the little credit
    page = phone.new_page()
    sign_in(page, "/m/", "tenant1", TENANT_PASSWORD)
    # 1.00 yuan runs out within seconds at the simulator's speed: the site says so.
    expect(page.get_by_role("alert")).to_contain_text("已断电", timeout=60_000)
    assert yuan(page.get_by_test_id("balance").inner_text()) <= 0
    tab(page, "提醒")
    expect(page.get_by_text("已断电：余额不足")).to_be_visible()
    screenshot(page, "m-alerts-cut")

    assert online_payment_enabled(product)
    tab(page, "充值")
    pay_online(page)

    tab(page, "首页")
    expect(page.get_by_text("供电中").first).to_be_visible(timeout=30_000)
    expect(page.get_by_text(re.compile("已恢复供电"))).to_be_visible()
    assert yuan(page.get_by_test_id("balance").inner_text()) > 0
    screenshot(page, "m-home-restored")


def pay_online(page: Page) -> None:
    """Pay 50 yuan through the provider the site offers first; the fake provider pays on open."""
    page.get_by_role("button", name="¥50").click()
    page.get_by_role("button", name="确认支付").click()
    expect(page.get_by_test_id("order-status")).to_contain_text("等待支付")
    screenshot(page, "m-topup-order")
    with page.context.expect_page() as opened:
        page.get_by_test_id("pay-link").click()
    opened.value.close()
    expect(page.get_by_test_id("order-status")).to_contain_text("支付成功", timeout=30_000)
    screenshot(page, "m-topup-paid")


def sell_at_the_counter(desktop: BrowserContext, account_id: str, amount: str) -> None:
    """An operator takes cash for ``account_id`` in the console."""
    page = desktop.new_page()
    sign_in(page, "/console/", "admin", ADMIN_PASSWORD)
    page.goto(f"/console/#/accounts/{account_id}")
    counter = page.get_by_role("form", name="柜台售电")
    counter.get_by_label("金额").fill(amount)
    counter.get_by_role("button", name="收款").click()
    expect(page.get_by_test_id("receipt")).to_contain_text(amount)
    page.close()


def test_a_tenant_on_a_pc_pays_by_qr_code_and_staff_refund_it(
    desktop: BrowserContext, browser: Browser, product: Product
) -> None:
    page = desktop.new_page()
    sign_in(page, "/m/", "tenant3", TENANT_PASSWORD)
    tab(page, "充值")
    page.get_by_role("button", name="支付宝").click()
    page.get_by_label("充值金额（元）").fill("30.00")
    page.get_by_role("button", name="确认支付").click()
    qr = page.get_by_role("img", name="支付二维码")
    expect(qr).to_be_visible()
    assert qr.evaluate("image => image.naturalWidth") > 0  # the server drew it
    order = page.locator("[data-order]").get_attribute("data-order")
    assert order
    screenshot(page, "pc-topup-qr")
    with page.context.expect_page() as opened:  # as if scanned: the fake pays
        page.get_by_test_id("pay-link").click()
    opened.value.close()
    expect(page.get_by_test_id("order-status")).to_contain_text("支付成功", timeout=30_000)

    # Staff find the order in the console and give part of it back through the provider.
    staff = browser.new_context(base_url=product.url, locale="zh-CN", **DESKTOP)  # type: ignore[arg-type]
    console = staff.new_page()
    sign_in(console, "/console/#/payments", "admin", ADMIN_PASSWORD)
    find = console.get_by_role("form", name="查询订单与退款")
    find.get_by_label("商户订单号").fill(order)
    find.get_by_role("button", name="查询").click()
    expect(console.get_by_text("已支付")).to_be_visible()
    refund = console.get_by_role("form", name="原路退款")
    refund.get_by_label("金额").fill("5.00")
    refund.get_by_label("原因").fill("多充了")
    refund.get_by_role("button", name="原路退款").click()
    expect(refund.locator(".form-status.ok")).to_contain_text("¥5.00")
    screenshot(console, "console-payments-refund")
    staff.close()


def test_a_tenant_sees_a_cash_receipt_from_the_counter(
    desktop: BrowserContext, phone: BrowserContext
) -> None:
    sell_at_the_counter(desktop, TENANT2_ACCOUNT, "20.00")
    page = phone.new_page()
    sign_in(page, "/m/", "tenant2", TENANT_PASSWORD)
    tab(page, "记录")
    expect(page.get_by_test_id("payments").get_by_text("¥20.00")).to_be_visible()
    expect(page.get_by_test_id("payments")).to_contain_text("现金")


def test_a_tenant_cannot_reach_another_tenants_pages(phone: BrowserContext) -> None:
    page = phone.new_page()
    sign_in(page, "/m/", "tenant2", TENANT_PASSWORD)
    expect(page.get_by_test_id("balance")).to_be_visible()
    page.goto(f"/m/#/{TENANT1_ACCOUNT}/home")
    expect(page.get_by_test_id("page-error")).to_contain_text("未找到")
    expect(page.get_by_test_id("balance")).to_have_count(0)
    page.goto(f"/m/#/{TENANT1_ACCOUNT}/history")
    expect(page.get_by_test_id("page-error")).to_be_visible()
    expect(page.get_by_test_id("ledger")).to_have_count(0)
    screenshot(page, "m-other-tenant-refused")
    # The console is for staff: a tenant is turned away at its door.
    sign_in(page, "/console/", "tenant2", TENANT_PASSWORD)
    expect(page.get_by_role("alert")).to_contain_text("仅供物业人员使用")


def test_a_wechat_menu_link_signs_the_tenant_in(product: Product, phone: BrowserContext) -> None:
    response = product.admin.post(
        "/api/v1/auth/token", data={"username": "tenant2", "password": TENANT_PASSWORD}
    )
    token = response.json()["access_token"]
    page = phone.new_page()
    page.goto(f"/m/#token={token}")
    expect(page.get_by_test_id("balance")).to_be_visible()
    assert "token=" not in page.url  # dropped from the address bar once used


def test_a_tenant_changes_the_password(product: Product, phone: BrowserContext) -> None:
    username = product.tenant_for(TENANT2_ACCOUNT)
    page = phone.new_page()
    sign_in(page, "/m/", username, TENANT_PASSWORD)
    page.get_by_role("link", name="密码").click()
    form = page.get_by_role("form", name="密码")
    form.get_by_label("当前密码").fill(TENANT_PASSWORD)
    form.get_by_label("新密码").fill("a-new-tenant-passphrase")
    form.get_by_role("button", name="保存").click()
    # Every token of the tenant stops working: the site asks to sign in with the new one.
    expect(page.get_by_role("alert")).to_contain_text("密码已修改")
    sign_in(page, "/m/", username, "a-new-tenant-passphrase")
    expect(page.get_by_test_id("balance")).to_be_visible()


def test_a_tenant_uses_the_site_with_the_keyboard_alone(phone: BrowserContext) -> None:
    page = phone.new_page()
    page.goto("/m/")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name=re.compile("跳到内容"))).to_be_focused()
    page.keyboard.press("Tab")  # the language button
    page.keyboard.press("Tab")
    expect(page.get_by_label("用户名")).to_be_focused()
    page.keyboard.type("tenant2")
    page.keyboard.press("Tab")
    expect(page.get_by_label("密码")).to_be_focused()
    page.keyboard.type(TENANT_PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("balance")).to_be_visible()
    usage = page.get_by_role("navigation").get_by_role("link", name="用电")
    usage.focus()
    page.keyboard.press("Enter")
    expect(usage).to_have_attribute("aria-current", "page")
    expect(page.get_by_role("img", name=re.compile("近 30 天"))).to_be_visible()
