"""The reports people print or open in Excel, as ``Document``s: the monthly statement
(打印账单), the dunning notice (催缴单), the energy report (用电报表) of a meter, an account
or a group, the list of tripped accounts (断电户清单) and the sales report (收款报表) with the
cashiers' shifts. Headings are in Chinese with English after them."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from prepaid_common.contracts.api.billing import (
    AccountView,
    DunningItem,
    Statement,
    UsageReport,
)
from prepaid_common.contracts.api.sales import CashReconciliation, SalesReport
from prepaid_common.contracts.api.usage import GroupUsageReport, UsageFigures

from gateway.documents.layout import Cell, Column, Document, Fact, Table

# Statement movements by kind, as a tenant reads them.
MOVEMENT_NAMES = {
    "top_up": "充值 top-up",
    "consumption": "电费 consumption",
    "refund": "退款 refund",
    "reversal": "冲正 reversal",
    "arrears": "欠费 arrears",
    "arrears_payment": "还欠 arrears paid",
    "adjustment": "调整 adjustment",
}
MODES = {"prepaid": "预付费 prepaid", "postpaid": "后付费 postpaid"}


def statement_document(statement: Statement) -> Document:
    """The monthly statement of one account (打印账单)."""
    movements: list[tuple[Cell, ...]] = [
        (MOVEMENT_NAMES.get(kind, kind), amount)
        for kind, amount in sorted(statement.movements.items())
    ]
    return Document(
        title=f"电费账单 Statement {statement.month}",
        name=f"statement-{_safe(statement.account_id)}-{statement.month}",
        facts=[
            Fact("户号 Account", statement.account_id),
            Fact("户名 Name", statement.name),
            Fact("计费方式 Mode", MODES.get(statement.mode, statement.mode)),
            Fact("月份 Month", statement.month),
            Fact("期初余额 Opening balance", statement.opening_balance, "money"),
            Fact("期末余额 Closing balance", statement.closing_balance, "money"),
            Fact("用电量 Energy (kWh)", statement.energy_kwh, "energy"),
            Fact("欠费 Arrears", statement.arrears, "money"),
            Fact("应缴金额 Amount due", statement.amount_due, "money"),
        ],
        tables=[
            Table(
                heading="本月收支 Movements",
                columns=(Column("项目 Kind", width=24), Column("金额 Amount (元)", "money")),
                rows=movements,
                total=("合计 Total", sum(statement.movements.values(), Decimal("0.00"))),
            )
        ],
    )


def dunning_document(items: Sequence[DunningItem]) -> Document:
    """The dunning notice (催缴单): every account that owes money, and the sum owed."""
    rows: list[tuple[Cell, ...]] = [
        (i.account_id, i.name, MODES.get(i.mode, i.mode), i.balance, i.arrears, i.amount_due)
        for i in items
    ]
    return Document(
        title="催缴单 Dunning notice",
        name="dunning",
        facts=[Fact("欠费户数 Accounts owing", len(rows), "integer")],
        tables=[
            Table(
                heading="欠费明细 Accounts owing money",
                columns=(
                    Column("户号 Account"),
                    Column("户名 Name", width=24),
                    Column("计费方式 Mode"),
                    Column("余额 Balance (元)", "money"),
                    Column("欠费 Arrears (元)", "money"),
                    Column("应缴 Amount due (元)", "money"),
                ),
                rows=rows,
                total=(
                    "合计 Total",
                    None,
                    None,
                    None,
                    None,
                    sum((i.amount_due for i in items), Decimal("0.00")),
                ),
            )
        ],
        notes=["请尽快缴清欠费，以免停电。Please pay what is due to keep the supply on."],
    )


def usage_document(report: UsageReport, *, subject: str, subject_id: str) -> Document:
    """The energy report (用电报表) of one meter or account: metered against billed."""
    rows: list[tuple[Cell, ...]] = [
        (p.period, p.metered_kwh, p.billed_kwh, p.metered_kwh - p.billed_kwh, p.cost)
        for p in report.items
    ]
    label = "表号 Meter" if subject == "meter" else "户号 Account"
    per = "按日 daily" if report.granularity == "day" else "按月 monthly"
    return Document(
        title=f"用电报表 Energy report ({per})",
        name=f"energy-{subject}-{_safe(subject_id)}",
        facts=[Fact(label, subject_id)],
        tables=[
            Table(
                heading="电表与系统对比 Meter vs system",
                columns=(
                    Column("日期 Period"),
                    Column("表计电量 Metered (kWh)", "energy"),
                    Column("计费电量 Billed (kWh)", "energy"),
                    Column("差额 Difference (kWh)", "energy"),
                    Column("电费 Cost (元)", "money"),
                ),
                rows=rows,
                total=(
                    "合计 Total",
                    sum((p.metered_kwh for p in report.items), Decimal("0.000")),
                    sum((p.billed_kwh for p in report.items), Decimal("0.000")),
                    sum((p.metered_kwh - p.billed_kwh for p in report.items), Decimal("0.000")),
                    sum((p.cost for p in report.items), Decimal("0.00")),
                ),
            )
        ],
    )


def group_usage_document(report: GroupUsageReport) -> Document:
    """The energy report of an account group: a row per account (with its meters), a row
    per meter, each account's periods, and the group's periods and totals."""
    energy = (
        Column("表计电量 Metered (kWh)", "energy"),
        Column("计费电量 Billed (kWh)", "energy"),
        Column("差额 Difference (kWh)", "energy"),
        Column("电费 Cost (元)", "money"),
    )
    total = ("合计 Total", *_figures(report))
    per = "按日 daily" if report.granularity == "day" else "按月 monthly"
    return Document(
        title=f"分组用电报表 Group energy report ({per})",
        name=f"energy-group-{_safe(report.group)}",
        facts=[
            Fact("分组 Group", report.group),
            Fact("起 From", report.start or "—"),
            Fact("止 To", report.end or "—"),
            Fact("户数 Accounts", len(report.accounts), "integer"),
            Fact("表计电量 Metered (kWh)", report.metered_kwh, "energy"),
            Fact("计费电量 Billed (kWh)", report.billed_kwh, "energy"),
            Fact("电费 Cost (元)", report.cost, "money"),
        ],
        tables=[
            Table(
                heading="按户 By account",
                columns=(
                    Column("户号 Account"),
                    Column("户名 Name", width=24),
                    Column("表号 Meters", width=24),
                    *energy,
                ),
                rows=[
                    (a.account_id, a.name, ", ".join(m.meter_id for m in a.meters), *_figures(a))
                    for a in report.accounts
                ],
                total=("合计 Total", None, None, *_figures(report)),
            ),
            Table(
                heading="按表 By meter",
                columns=(Column("户号 Account"), Column("表号 Meter"), *energy),
                rows=[
                    (a.account_id, m.meter_id, *_figures(m))
                    for a in report.accounts
                    for m in a.meters
                ],
                total=("合计 Total", None, *_figures(report)),
            ),
            Table(
                heading="按户按期 By account and period",
                columns=(Column("户号 Account"), Column("日期 Period"), *energy),
                rows=[
                    (a.account_id, p.period, *_figures(p)) for a in report.accounts for p in a.items
                ],
                total=("合计 Total", None, *_figures(report)),
            ),
            Table(
                heading="分组按期 Group by period",
                columns=(Column("日期 Period"), *energy),
                rows=[(p.period, *_figures(p)) for p in report.items],
                total=total,
            ),
        ],
    )


def _figures(figures: UsageFigures) -> tuple[Cell, ...]:
    return (figures.metered_kwh, figures.billed_kwh, figures.difference_kwh, figures.cost)


def tripped_document(accounts: Sequence[AccountView]) -> Document:
    """The tripped accounts (断电户清单): accounts with a meter whose supply is off."""
    rows: list[tuple[Cell, ...]] = [
        (
            a.id,
            a.name,
            ", ".join(m.meter_id for m in a.meters if m.supply == "off"),
            a.balance,
            a.arrears,
        )
        for a in accounts
    ]
    return Document(
        title="断电户清单 Tripped accounts",
        name="tripped-accounts",
        facts=[Fact("断电户数 Accounts tripped", len(rows), "integer")],
        tables=[
            Table(
                heading="断电明细 Accounts with supply off",
                columns=(
                    Column("户号 Account"),
                    Column("户名 Name", width=24),
                    Column("断电表号 Meters off", width=24),
                    Column("余额 Balance (元)", "money"),
                    Column("欠费 Arrears (元)", "money"),
                ),
                rows=rows,
            )
        ],
    )


CHANNELS = {"cash": "现金 cash", "wechat": "微信 WeChat Pay", "alipay": "支付宝 Alipay"}


def sales_document(report: SalesReport) -> Document:
    """Daily or monthly sales (收款报表) by channel and operator, with totals by channel."""
    rows: list[tuple[Cell, ...]] = [
        (
            r.period,
            CHANNELS.get(r.channel, r.channel),
            r.operator,
            r.payments,
            r.received,
            r.refunded,
            r.net,
        )
        for r in report.items
    ]
    per = "日报 daily" if report.granularity == "day" else "月报 monthly"
    channels: list[tuple[Cell, ...]] = [
        (CHANNELS.get(channel, channel), net) for channel, net in report.by_channel.items()
    ]
    return Document(
        title=f"收款报表 Sales ({per})",
        name=f"sales-{report.granularity}-{report.start}-{report.end}",
        facts=[
            Fact("起 From", report.start),
            Fact("止 To", report.end),
            Fact("净收款 Net received (元)", report.total, "money"),
            Fact("现金与日结 Cash vs shifts", _verdict(report.cash)),
        ],
        tables=[
            Table(
                heading="按渠道和操作员 By channel and operator",
                columns=(
                    Column("日期 Period"),
                    Column("渠道 Channel", width=18),
                    Column("操作员 Operator"),
                    Column("笔数 Payments", "integer"),
                    Column("收款 Received (元)", "money"),
                    Column("退款 Refunded (元)", "money"),
                    Column("净额 Net (元)", "money"),
                ),
                rows=rows,
                total=(
                    "合计 Total",
                    None,
                    None,
                    sum(r.payments for r in report.items),
                    sum((r.received for r in report.items), Decimal("0.00")),
                    sum((r.refunded for r in report.items), Decimal("0.00")),
                    report.total,
                ),
            ),
            Table(
                heading="按渠道合计（与账本清算科目核对）By channel (ledger clearing)",
                columns=(Column("渠道 Channel", width=18), Column("净额 Net (元)", "money")),
                rows=channels,
                total=("合计 Total", report.total),
            ),
            *_shift_tables(report.cash),
        ],
    )


SHIFTS_SHEET = "收费员日结 Cashier shifts"


def _verdict(cash: CashReconciliation) -> str:
    if cash.agrees:
        return "一致 agrees"
    return "不一致 does not agree"


def _shift_tables(cash: CashReconciliation) -> list[Table]:
    """The cashiers' shifts closed in the span and the counter's cash set against them."""
    shifts: list[tuple[Cell, ...]] = [
        (
            s.cashier,
            s.opened_at,
            s.closed_at,
            s.expected_cash,
            s.counted_cash,
            s.difference,
            s.note,
        )
        for s in cash.shifts
    ]
    cashiers: list[tuple[Cell, ...]] = [
        (c.cashier, c.shifts, c.expected_cash, c.counted_cash, c.difference)
        for c in cash.by_cashier
    ]
    reconciliation: list[tuple[Cell, ...]] = [
        ("柜台现金 Counter cash (ledger)", cash.counter_cash),
        ("日结应收 Shifts' expected cash", cash.expected_cash),
        # Subtracted from zero: a negated 0.00 would print as -0.00.
        ("减：期前收取 Less: taken before the span", Decimal("0.00") - cash.before_span),
        ("加：未日结 Add: not yet closed", cash.not_yet_closed),
        ("加：不计入日结 Add: outside shifts (冲正 reversals)", cash.outside_shifts),
        (f"结论 Result: {_verdict(cash)}", None),
    ]
    return [
        Table(
            heading="日结明细 Shifts closed in the span",
            columns=(
                Column("收费员 Cashier"),
                Column("开班 Opened", "datetime", width=20),
                Column("日结 Closed", "datetime", width=20),
                Column("应收 Expected (元)", "money"),
                Column("实收 Counted (元)", "money"),
                Column("差额 Difference (元)", "money"),
                Column("备注 Note", width=24),
            ),
            rows=shifts,
            total=(
                "合计 Total",
                None,
                None,
                cash.expected_cash,
                cash.counted_cash,
                cash.difference,
                None,
            ),
            sheet=SHIFTS_SHEET,
        ),
        Table(
            heading="按收费员 By cashier",
            columns=(
                Column("收费员 Cashier"),
                Column("日结次数 Shifts", "integer"),
                Column("应收 Expected (元)", "money"),
                Column("实收 Counted (元)", "money"),
                Column("差额 Difference (元)", "money"),
            ),
            rows=cashiers,
            total=(
                "合计 Total",
                sum(c.shifts for c in cash.by_cashier),
                cash.expected_cash,
                cash.counted_cash,
                cash.difference,
            ),
            sheet=SHIFTS_SHEET,
        ),
        Table(
            heading="现金核对 Counter cash against the shifts",
            columns=(Column("项目 Item", width=40), Column("金额 Amount (元)", "money")),
            rows=reconciliation,
            sheet=SHIFTS_SHEET,
        ),
    ]


def _safe(identifier: str) -> str:
    # File names are ASCII without quotes or separators.
    return "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in identifier)
