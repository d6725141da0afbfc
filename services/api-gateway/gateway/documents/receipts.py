"""A payment's receipt (收据) as a ``Document`` to print: the facts the tenant keeps, in
Chinese with English after them; a reversed payment's receipt says it is void at its head."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from prepaid_common.contracts.api.receipts import PaymentReceipt

from gateway.documents.layout import Document, Fact

CHANNEL_NAMES = {"cash": "现金 Cash", "wechat": "微信支付 WeChat Pay", "alipay": "支付宝 Alipay"}
VOID = "已作废（冲正）VOID: reversed"


def receipt_document(receipt: PaymentReceipt) -> Document:
    """The receipt of one payment, as the cashier hands it over or the tenant prints it."""
    title = "收据 Receipt"
    if receipt.site_name:
        title = f"{receipt.site_name} {title}"
    if receipt.reversal is not None:
        title = f"{title} — {VOID}"
    premises = " ".join(
        part
        for part in (
            receipt.building and f"{receipt.building}栋",
            receipt.floor and f"{receipt.floor}层",
            receipt.room and f"{receipt.room}室",
        )
        if part
    )
    facts = [
        Fact("收据号 Receipt No.", receipt.receipt_no),
        Fact("日期 Date", receipt.paid_at, "datetime"),
        Fact("户号 Account", receipt.account_id),
        Fact("户名 Name", receipt.account_name),
    ]
    if receipt.tenant_name:
        facts.append(Fact("租户 Tenant", receipt.tenant_name))
    if premises:
        facts.append(Fact("房间 Premises", premises))
    facts += [
        Fact("金额 Amount (元)", receipt.amount, "money"),
        Fact("人民币大写 In words", receipt.amount_in_words),
        Fact("方式 Channel", CHANNEL_NAMES.get(receipt.channel, receipt.channel)),
    ]
    if receipt.cashier is not None:
        facts.append(Fact("收款员 Cashier", receipt.cashier))
    if receipt.counter_receipt is not None:
        facts.append(Fact("票据号 Counter receipt", receipt.counter_receipt))
    if receipt.transaction_id is not None:
        facts.append(Fact("交易单号 Transaction", receipt.transaction_id))
    if receipt.to_arrears:
        facts.append(Fact("其中还欠 To arrears", receipt.to_arrears, "money"))
    if receipt.balance_after is not None:
        facts.append(Fact("充值后余额 Balance after", receipt.balance_after, "money"))
    facts.append(Fact("状态 Status", _status(receipt)))
    return Document(
        title=title,
        name=f"receipt-{receipt.receipt_no}",
        facts=facts,
        notes=_notes(receipt),
        zone=ZoneInfo(receipt.timezone),
    )


def _status(receipt: PaymentReceipt) -> str:
    if receipt.reversal is not None:
        return VOID
    if receipt.status == "pending":
        return "入账中 Being credited"
    return "已入账 Credited"


def _notes(receipt: PaymentReceipt) -> list[str]:
    notes = [f"付款编号 Payment id: {receipt.payment_id}; 时区 Time zone: {receipt.timezone}"]
    reversal = receipt.reversal
    if reversal is not None:
        at = reversal.reversed_at.astimezone(ZoneInfo(receipt.timezone))
        notes.append(
            f"本收据已作废：该笔充值已于 {at:%Y-%m-%d %H:%M:%S} 由 {reversal.operator} 冲正"
            f"（{reversal.reason}）。This receipt is void: the top-up was reversed "
            f"(transaction {reversal.transaction_id})."
        )
    if receipt.status == "pending":
        notes.append("款项正在入账，余额稍后可查。The balance after shows once it is credited.")
    return notes
