"""Alipay's trade bill read as Alipay serves it: a zip of GBK CSV files named in GBK."""

from __future__ import annotations

import io
import time
import zipfile
from decimal import Decimal

import pytest
from payments.domain.bills import BillLine, parse_alipay_trade_bill, read_alipay_bill_archive

HEADER = (
    "支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,"
    "终端号,对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,"
    "支付宝优惠（元）,商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,"
    "卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注"
)
START = (
    "#-----------------------------------------业务明细列表----------------------------------------"
)
END = (
    "#-----------------------------------------业务明细列表结束------------------------------------"
)


def row(trade: str, no: str, kind: str, amount: str, product: str = "电费充值") -> str:
    cells = [trade, no, kind, product, "2026-12-06 10:00:00", "2026-12-06 10:00:05", "", "",
             "", "", "buyer", amount, amount, "0.00", "0.00", "0.00", "0.00", "0.00", "",
             "0.00", "0.00", "RF1" if kind == "退款" else "", "0.00", "0.00", ""]  # fmt: skip
    # Alipay pads every cell with a tab so that spreadsheets keep numbers as text.
    return ",".join(f"{cell}\t" for cell in cells)


def detail(*rows: str, end: bool = True) -> str:
    lines = [
        "#支付宝业务明细查询",
        "#账号：[20880000000000010156]",
        "#起始日期：[2026年12月06日 00:00:00]   终止日期：[2026年12月07日 00:00:00]",
        START,
        HEADER,
        *rows,
    ]
    if end:
        lines += [
            END,
            "#交易合计：2笔，商家实收共：62.50元，商家优惠共：0.00元",
            "#退款合计：1笔，商家实收退款共：-12.50元，商家优惠退款共：0.00元",
            "#导出时间：[2026年12月07日 09:42:11]",
        ]
    return "\r\n".join(lines) + "\r\n"


SUMMARY = "\r\n".join(
    [
        "#支付宝业务汇总查询",
        "#账号：[20880000000000010156]",
        "门店编号,门店名称,交易订单总笔数,退款订单总笔数,订单金额（元）,商家实收（元）",
        "合计,,2,1,62.50,50.00",
        "#-----------------------------------------业务汇总列表结束------------------------------------",
    ]
)


class GbkNamed(zipfile.ZipInfo):
    """An entry named in GBK without the UTF-8 flag, as Alipay's archives are."""

    def __init__(self, filename: str) -> None:
        super().__init__(filename, date_time=time.localtime()[:6])

    def _encodeFilenameFlags(self) -> tuple[bytes, int]:  # noqa: N802 - zipfile's own name
        return self.filename.encode("gbk"), self.flag_bits & ~0x800


def archive(files: dict[str, str], encoding: str = "gbk") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zipped:
        for name, text in files.items():
            zipped.writestr(GbkNamed(name), text.encode(encoding))
    return buffer.getvalue()


STEM = "20880000000000010156_20261206"
TRADES = (
    row("2026120622001", "PP1", "交易", "50.00"),
    row("2026120622002", "PP2", "交易", "12.50"),
    row("2026120622002", "PP2", "退款", "-12.50"),
)


def test_the_zip_alipay_serves_is_read_gbk_names_cells_and_all() -> None:
    content = archive(
        {f"{STEM}_业务明细.csv": detail(*TRADES), f"{STEM}_业务明细(汇总).csv": SUMMARY}
    )
    names = [entry.filename for entry in zipfile.ZipFile(io.BytesIO(content)).infolist()]
    assert not any("业务明细" in name for name in names)  # as Alipay writes them: no UTF-8 flag
    assert read_alipay_bill_archive(content) == [
        BillLine("PP1", "2026120622001", Decimal("50.00")),
        BillLine("PP2", "2026120622002", Decimal("12.50")),
    ]


def test_a_name_outside_gbk_in_the_bill_is_read_as_gb18030() -> None:
    # U+3400 is in GB18030 (GBK's superset) but not GBK: strict GBK would fail the whole bill.
    text = detail(row("2026120622001", "PP1", "交易", "50.00", product="充值㐀"))
    content = archive({f"{STEM}_业务明细.csv": text}, encoding="gb18030")
    assert read_alipay_bill_archive(content) == [BillLine("PP1", "2026120622001", Decimal("50.00"))]


def test_a_bill_cut_short_is_refused_not_read_as_fewer_trades() -> None:
    with pytest.raises(ValueError, match="end line"):
        parse_alipay_trade_bill(detail(*TRADES[:1], end=False))
    with pytest.raises(ValueError, match="cells"):
        parse_alipay_trade_bill(detail("2026120622001\t,PP1\t,交易\t"))


def test_an_archive_without_exactly_one_detail_bill_is_refused() -> None:
    with pytest.raises(ValueError, match="one Alipay detail bill"):
        read_alipay_bill_archive(archive({f"{STEM}_业务明细(汇总).csv": SUMMARY}))
    with pytest.raises(ValueError, match="not an Alipay bill archive"):
        read_alipay_bill_archive(b"<html>bill expired</html>")


def test_the_fake_provider_serves_the_bill_as_alipay_does() -> None:
    from datetime import UTC, date, datetime

    from simulator.payproviders import FakeKeys, FakeProviders
    from simulator.payproviders.app import FakeOrder

    fake = FakeProviders(FakeKeys.generate())
    paid_at = datetime(2026, 12, 6, 2, 0, tzinfo=UTC)  # 10:00 in Beijing
    fake.orders[("alipay", "PP7")] = FakeOrder(
        "alipay", "PP7", 1250, "", "qr", "TRADE_SUCCESS", "2026120622007", 1250, paid_at
    )
    content = fake.alipay_bill(date(2026, 12, 6))
    entries = zipfile.ZipFile(io.BytesIO(content)).infolist()
    assert [entry.flag_bits & 0x800 for entry in entries] == [0, 0]
    detail_text = zipfile.ZipFile(io.BytesIO(content)).read(entries[0]).decode("gbk")
    assert detail_text.startswith("#支付宝业务明细查询\r\n")
    assert "\t," in detail_text
    assert "#交易合计：1笔" in detail_text
    assert read_alipay_bill_archive(content) == [BillLine("PP7", "2026120622007", Decimal("12.50"))]
