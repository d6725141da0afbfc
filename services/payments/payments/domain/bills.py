"""A provider's daily trade bill against our orders: every difference, for an operator."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class BillLine:
    """One paid trade as the provider's bill lists it."""

    out_trade_no: str
    transaction_id: str
    amount: Decimal


@dataclass(frozen=True)
class OurPayment:
    """One order as we hold it, for the same day."""

    out_trade_no: str
    transaction_id: str | None
    amount: Decimal
    status: str


@dataclass(frozen=True)
class BillDifference:
    """Something the bill and our orders disagree on."""

    kind: str  # paid_there_not_here, paid_here_not_there, amount_differs
    out_trade_no: str
    detail: str


def compare_bill(
    lines: Iterable[BillLine],
    ours_paid: Mapping[str, OurPayment],
    ours_any: Mapping[str, OurPayment],
) -> list[BillDifference]:
    """Return every difference between a day's bill and the orders we credited that day.

    ``ours_paid``: orders we marked paid that day; ``ours_any``: every order we know of (a
    payment we missed shows as pending or expired here).
    """
    differences: list[BillDifference] = []
    seen: set[str] = set()
    for line in lines:
        seen.add(line.out_trade_no)
        ours = ours_paid.get(line.out_trade_no) or ours_any.get(line.out_trade_no)
        if ours is None or ours.status not in {"paid", "refunded"}:
            state = "unknown here" if ours is None else ours.status
            differences.append(
                BillDifference(
                    "paid_there_not_here",
                    line.out_trade_no,
                    f"bill: paid {line.amount} by {line.transaction_id}; here: {state}",
                )
            )
        elif ours.amount != line.amount:
            differences.append(
                BillDifference(
                    "amount_differs",
                    line.out_trade_no,
                    f"bill: {line.amount}; here: {ours.amount}",
                )
            )
    for out_trade_no, ours in sorted(ours_paid.items()):
        if out_trade_no not in seen:
            differences.append(
                BillDifference(
                    "paid_here_not_there",
                    out_trade_no,
                    f"here: paid {ours.amount} by {ours.transaction_id}; not in the bill",
                )
            )
    return differences


def _clean(cell: str) -> str:
    # WeChat Pay prefixes every bill cell with a backtick so spreadsheets keep it as text.
    return cell.strip().lstrip("`").strip()


def parse_wechat_trade_bill(text: str) -> list[BillLine]:
    """Return the paid trades of a WeChat Pay trade bill (CSV, cells prefixed with `)."""
    rows = [line for line in text.splitlines() if line.strip()]
    if not rows:
        return []
    header = [_clean(cell) for cell in rows[0].split(",")]
    try:
        no, transaction, state = (
            header.index("商户订单号"),
            header.index("微信订单号"),
            header.index("交易状态"),
        )
        amount = header.index("订单金额") if "订单金额" in header else header.index("应结订单金额")
    except ValueError as error:
        raise ValueError(f"not a WeChat Pay trade bill: {error}") from None
    lines = []
    for row in rows[1:]:
        cells = [_clean(cell) for cell in row.split(",")]
        if not row.startswith("`") or len(cells) < len(header):
            break  # the totals follow the trades
        if cells[state] == "SUCCESS":
            lines.append(BillLine(cells[no], cells[transaction], Decimal(cells[amount])))
    return lines


def parse_alipay_trade_bill(text: str) -> list[BillLine]:
    """Return the paid trades of an Alipay trade detail bill (CSV, ``#`` lines are notes)."""
    rows = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if not rows:
        return []
    header = [cell.strip() for cell in rows[0].split(",")]
    try:
        transaction, no, kind = (
            header.index("支付宝交易号"),
            header.index("商户订单号"),
            header.index("业务类型"),
        )
        amount = header.index("订单金额（元）")
    except ValueError as error:
        raise ValueError(f"not an Alipay trade bill: {error}") from None
    lines = []
    for row in rows[1:]:
        cells = [cell.strip() for cell in row.split(",")]
        if len(cells) < len(header):
            continue
        if cells[kind] == "交易":
            lines.append(BillLine(cells[no], cells[transaction], Decimal(cells[amount])))
    return lines
