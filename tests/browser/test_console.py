"""The operator's console in real Chromium: the dashboard, trip and close, open and sell, audit."""

from __future__ import annotations

import re

from browser.kit import (
    ADMIN_PASSWORD,
    LOW_CREDIT_ACCOUNT,
    RELAY_METER,
    Product,
    screenshot,
    sign_in,
)
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
    page.get_by_role("button", name="English").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    expect(page.get_by_test_id("money-today")).to_contain_text("¥")
    screenshot(page, "console-dashboard-english")
    page.get_by_role("button", name="中文").click()
    expect(page.get_by_role("heading", name="总览")).to_be_visible()
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
        ("在线支付", "console-payments"),
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
    page.get_by_role("button", name="立即抄表").click()
    expect(page.get_by_text("已抄读")).to_be_visible()

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
    history = page.get_by_role("region", name="绑定与换表记录")
    expect(history.get_by_role("row").filter(has_text="ACC-")).not_to_have_count(0)


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


def submit(page: Page, form_name: str, fields: dict[str, str], button: str) -> None:
    """Fill the form labelled ``form_name`` and submit it; expect no error under it."""
    form = page.get_by_role("form", name=form_name)
    for label, value in fields.items():
        form.get_by_label(label, exact=True).fill(value)
    form.get_by_role("button", name=button).click()
    expect(form.locator(".form-status.ok")).to_be_visible()
    expect(form.locator(".form-status.error")).to_have_count(0)


def test_an_admin_runs_the_site_from_the_console(product: Product, desktop: BrowserContext) -> None:
    page = signed_in(desktop)

    # Tariffs: define one, then schedule its next version.
    page.goto("/console/#/tariffs")
    page.locator("summary", has_text="新建电价方案").click()
    form = page.get_by_role("form", name="新建电价方案")
    form.get_by_label("编号").fill("shops-2027")
    form.get_by_label("名称").fill("商铺 2027")
    form.get_by_label("单一电价（元/kWh）").fill("1.1000")
    form.get_by_role("button", name="保存").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("shops-2027")
    version = page.get_by_role("form", name="新版本")
    version.get_by_label("单一电价（元/kWh）").fill("1.2500")
    version.get_by_label("生效时间").fill("2031-01-01T00:00")
    version.get_by_role("button", name="发布新版本").click()
    expect(page.get_by_text("待生效")).to_be_visible()

    # Site policy: night hours, weekends and a holiday without cuts.
    page.goto("/console/#/policy")
    policy = page.get_by_role("form", name="站点策略")
    policy.get_by_label("每日友好时段").fill("20:00-08:00")
    policy.get_by_label("周六").check()
    policy.get_by_label("周日").check()
    policy.get_by_label("节假日").fill("2027-01-01")
    policy.get_by_role("button", name="保存").click()
    expect(policy.locator(".form-status.ok")).to_be_visible()
    saved = product.admin.get("/api/v1/policy").json()
    assert saved["friendly_weekdays"] == [5, 6]
    assert saved["holidays"] == ["2027-01-01"]

    # Hold-power for a meter, shedding for a group, both ended again.
    page.goto("/console/#/supply")
    hold = page.get_by_role("form", name="开始保电")
    hold.get_by_label("对象").fill(RELAY_METER)
    hold.get_by_label("原因").fill("医疗设备")
    hold.get_by_role("button", name="开始保电").click()
    expect(page.get_by_role("row").filter(has_text="医疗设备")).to_be_visible()
    # A shed names a group some account is in (an unknown group is refused): put one there.
    joined = product.admin.patch(f"/api/v1/accounts/{LOW_CREDIT_ACCOUNT}", json={"groups": ["F9"]})
    assert joined.status_code == 200, joined.text
    submit(page, "开始限电", {"分组": "F9", "原因": "节能"}, "开始限电")
    expect(page.get_by_role("row").filter(has_text="节能")).to_be_visible()
    page.get_by_role("row").filter(has_text="医疗设备").get_by_role("button", name="解除").click()
    expect(page.get_by_role("row").filter(has_text="医疗设备")).to_have_count(0)
    page.get_by_role("row").filter(has_text="节能").get_by_role("button", name="结束限电").click()
    expect(page.get_by_role("row").filter(has_text="节能")).to_have_count(0)

    # Users: an operator for the front desk.
    page.goto("/console/#/users")
    form = page.get_by_role("form", name="新建用户")
    form.get_by_label("用户名").fill("cashier1")
    form.get_by_label("密码").fill("cashier-password-1")
    form.get_by_label("角色").select_option("operator")
    form.get_by_role("button", name="新建用户").click()
    expect(form.locator(".form-status.ok")).to_contain_text("cashier1")

    # A DTU with one new meter (nothing answers there: it shows offline).
    page.goto("/console/#/dtus")
    page.locator("summary", has_text="登记或修改采集器").click()
    dtu = page.get_by_role("form", name="登记或修改采集器")
    dtu.get_by_label("编号", exact=True).fill("DTU-NEW")
    dtu.get_by_label("主机地址").fill("127.0.0.1")
    dtu.get_by_label("端口").fill("9")
    dtu.get_by_label(re.compile("电表（每行")).fill("M-NEW-1,1,reference-prepaid")
    dtu.get_by_role("button", name="保存采集器").click()
    expect(dtu.locator(".form-status.ok")).to_contain_text("DTU-NEW")

    # An account: a meter bound, terms, arrears, a refund, a reversal, a statement.
    page.goto("/console/#/accounts")
    page.locator("summary", has_text="开户").click()
    opening = page.get_by_role("form", name="开户")
    opening.get_by_label("账户").fill("SHOP-202")
    opening.get_by_label("名称").fill("二楼 202 书店")
    opening.get_by_label("电价", exact=True).select_option("shops-2027")
    opening.get_by_role("button", name="开户").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("SHOP-202")
    counter = page.get_by_role("form", name="柜台售电")
    counter.get_by_label("金额").fill("100.00")
    counter.get_by_role("button", name="收款").click()
    expect(page.get_by_test_id("balance")).to_have_text("¥100.00", timeout=15_000)

    page.locator("summary", has_text="绑定电表").click()
    submit(page, "绑定电表", {"电表": "M-NEW-1", "倍率 (CT×PT)": "40"}, "绑定电表")
    expect(page.get_by_role("link", name="M-NEW-1")).to_be_visible()

    page.locator("summary", has_text="修改账户条件").click()
    submit(page, "修改账户条件", {"预警线": "30.00"}, "保存")
    page.locator("summary", has_text="欠费与退费").click()
    submit(page, "欠费", {"金额": "12.50", "原因": "上月抄表差额"}, "登记欠费")
    submit(page, "退费", {"金额": "10.00", "原因": "多收"}, "退费")
    # Arrears are owed apart from the balance (recovered from top-ups); the refund is paid out.
    expect(page.get_by_test_id("arrears")).to_have_text("¥12.50", timeout=15_000)
    expect(page.get_by_test_id("balance")).to_have_text("¥90.00", timeout=15_000)

    refund_row = page.get_by_role("row").filter(has_text="退费").first
    refund_row.get_by_role("button", name="冲正").click()
    reversal = refund_row.get_by_role("form", name="冲正")
    reversal.get_by_label("原因").fill("退错了")
    reversal.get_by_role("button", name="冲正").click()
    expect(page.get_by_test_id("balance")).to_have_text("¥100.00", timeout=15_000)

    page.locator("summary", has_text="月度账单").click()
    page.get_by_role("form", name="月度账单").get_by_role("button", name="生成账单").click()
    expect(page.get_by_role("region", name="月度账单")).to_contain_text("期末余额")
    screenshot(page, "console-account-worked")

    terms = product.admin.get("/api/v1/accounts/SHOP-202").json()
    assert terms["warning_line"] == "30.00"
    assert terms["tariff_id"] == "shops-2027"


def test_an_operator_sees_only_what_the_role_allows(
    product: Product, desktop: BrowserContext
) -> None:
    response = product.admin.post(
        "/api/v1/users",
        json={"username": "desk1", "password": "desk-operator-pass", "role": "operator"},
    )
    assert response.status_code in (201, 409), response.text
    page = desktop.new_page()
    sign_in(page, "/console/", "desk1", "desk-operator-pass")
    expect(page.get_by_role("heading", name="总览")).to_be_visible()
    navigation = page.get_by_role("navigation")
    expect(navigation.get_by_role("link", name="账户", exact=True)).to_be_visible()
    expect(navigation.get_by_role("link", name="用户与角色")).to_have_count(0)
    expect(navigation.get_by_role("link", name="操作日志")).to_have_count(0)
    page.goto("/console/#/users")
    expect(page.get_by_role("alert")).to_contain_text("无权")
    page.goto("/console/#/tariffs")
    expect(page.get_by_role("heading", level=1, name="电价")).to_be_visible()
    expect(page.locator("summary", has_text="新建电价方案")).to_have_count(0)
