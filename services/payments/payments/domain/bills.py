"""A provider's daily trade bill against our orders: every difference, for an operator."""

from __future__ import annotations

import csv
import io
import zipfile
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


# The detail list of an Alipay trade bill sits between these two note lines; the end line is
# followed by the totals. A file without the end line was cut short.
ALIPAY_LIST_END = "业务明细列表结束"
ALIPAY_DETAIL = "业务明细"
ALIPAY_SUMMARY = "汇总"


def parse_alipay_trade_bill(text: str) -> list[BillLine]:
    """Return the paid trades of an Alipay trade detail bill (业务明细).

    As Alipay writes it: ``#`` note lines (title, account, period, the list's start line),
    the column header, one row per trade or refund with every cell padded by a tab (so that
    spreadsheets keep numbers as text), the list's end line and the totals (``#交易合计``,
    ``#退款合计``, ``#导出时间``). Trades (业务类型 交易) are returned; refunds are not
    payments. A bill without its end line was cut short: ValueError, not a shorter list.
    """
    lines_in = text.splitlines()
    if not any(line.startswith("#") and ALIPAY_LIST_END in line for line in lines_in):
        raise ValueError("not a whole Alipay trade bill: the detail list's end line is missing")
    rows: list[list[str]] = []
    for cells in csv.reader(line for line in lines_in if line.strip()):
        if cells and cells[0].startswith("#"):
            if ALIPAY_LIST_END in cells[0]:
                break  # the totals follow
            continue
        rows.append([cell.strip() for cell in cells])
    if not rows:
        return []
    header = rows[0]
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
    for cells in rows[1:]:
        if len(cells) < len(header):
            raise ValueError(f"Alipay trade bill row with {len(cells)} cells: {cells[:2]}")
        if cells[kind] == "交易":
            lines.append(BillLine(cells[no], cells[transaction], Decimal(cells[amount])))
    return lines


def _zip_name(entry: zipfile.ZipInfo) -> str:
    # Alipay names its files in GBK without the zip's UTF-8 flag: zipfile read the name's
    # bytes as cp437, which gives them back unchanged.
    if entry.flag_bits & 0x800:
        return entry.filename
    return entry.filename.encode("cp437").decode("gb18030", errors="replace")


def read_alipay_bill_archive(content: bytes) -> list[BillLine]:
    """Return the paid trades of the zip Alipay's bill download URL serves.

    The zip holds two CSV files named ``<account>_<yyyymmdd>_业务明细.csv`` (the trades) and
    ``..._业务明细(汇总).csv`` (the totals), both GBK-encoded (read as GB18030, its superset,
    so that a rare character in a product or buyer name cannot fail the whole bill). Exactly
    one detail file is expected; ValueError otherwise, or for a damaged zip.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
        details = [
            entry
            for entry in archive.infolist()
            if _zip_name(entry).endswith(".csv")
            and ALIPAY_DETAIL in _zip_name(entry)
            and ALIPAY_SUMMARY not in _zip_name(entry)
        ]
        if len(details) != 1:
            names = [_zip_name(entry) for entry in archive.infolist()]
            raise ValueError(f"expected one Alipay detail bill in the zip, found {names}")
        text = archive.read(details[0]).decode("gb18030")
    except (zipfile.BadZipFile, UnicodeDecodeError) as error:
        raise ValueError(f"not an Alipay bill archive: {error}") from None
    return parse_alipay_trade_bill(text)
