"""Yuan and fen exactly, the order's life, trade numbers and the growing query pauses."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from payments.domain.bills import (
    BillLine,
    OurPayment,
    compare_bill,
    parse_alipay_trade_bill,
    parse_wechat_trade_bill,
)
from payments.domain.money import fen_to_yuan, parse_yuan, yuan_text, yuan_to_fen
from payments.domain.orders import (
    PAYABLE,
    Channel,
    OrderStatus,
    Provider,
    check_transition,
    new_out_trade_no,
    next_query_at,
    validate_order_amount,
)
from prepaid_common.errors import Conflict, Invalid

NOW = datetime(2026, 12, 7, 4, 0, tzinfo=UTC)
yuan_amounts = st.decimals(
    min_value=Decimal("0.01"), max_value=Decimal("99999999.99"), places=2, allow_nan=False
)


@given(st.integers(min_value=0, max_value=10**12))
def test_fen_to_yuan_and_back_is_exact(fen: int) -> None:
    assert yuan_to_fen(fen_to_yuan(fen)) == fen


@given(yuan_amounts)
def test_yuan_to_fen_and_back_is_exact(amount: Decimal) -> None:
    assert fen_to_yuan(yuan_to_fen(amount)) == amount
    assert parse_yuan(yuan_text(amount)) == amount
    assert re.fullmatch(r"\d+\.\d\d", yuan_text(amount))


def test_known_amounts() -> None:
    assert yuan_to_fen(Decimal("50.00")) == 5000
    assert yuan_to_fen(Decimal("0.1")) == 10
    assert yuan_to_fen(Decimal("12.5")) == 1250
    assert fen_to_yuan(1) == Decimal("0.01")
    assert yuan_text(Decimal("12.5")) == "12.50"
    assert yuan_text(Decimal("1E+2")) == "100.00"


@pytest.mark.parametrize("bad", ["0.001", "1.005", "NaN", "Infinity"])
def test_a_fraction_of_a_fen_is_refused(bad: str) -> None:
    with pytest.raises(Invalid):
        yuan_to_fen(Decimal(bad))


@pytest.mark.parametrize("bad", ["", "abc", "1,00", "NaN"])
def test_alipay_amount_text_must_be_a_number(bad: str) -> None:
    with pytest.raises(Invalid):
        parse_yuan(bad)


@pytest.mark.parametrize("bad", ["0", "-1.00", "0.001", "50000.01"])
def test_order_amount_rules(bad: str) -> None:
    with pytest.raises(Invalid):
        validate_order_amount(Decimal(bad))
    assert validate_order_amount(Decimal("50.00")) == Decimal("50.00")


def test_channels_name_their_provider() -> None:
    assert {c.provider for c in Channel if c.value.startswith("wechat")} == {Provider.WECHATPAY}
    assert Channel.ALIPAY_QR.provider is Provider.ALIPAY
    assert Channel.ALIPAY_WAP.provider is Provider.ALIPAY


def test_the_order_life() -> None:
    check_transition(OrderStatus.PENDING, OrderStatus.PAID)
    check_transition(OrderStatus.PENDING, OrderStatus.EXPIRED)
    check_transition(OrderStatus.PAID, OrderStatus.REFUNDED)
    # Money taken for an order we gave up on is still money taken.
    check_transition(OrderStatus.EXPIRED, OrderStatus.PAID)
    for current, new in [
        (OrderStatus.PAID, OrderStatus.PAID),
        (OrderStatus.PAID, OrderStatus.PENDING),
        (OrderStatus.REFUNDED, OrderStatus.PAID),
        (OrderStatus.PENDING, OrderStatus.REFUNDED),
    ]:
        with pytest.raises(Conflict):
            check_transition(current, new)
    assert OrderStatus.PAID not in PAYABLE
    assert OrderStatus.PENDING in PAYABLE


def test_out_trade_numbers_fit_wechat_and_never_repeat() -> None:
    numbers = {new_out_trade_no(NOW) for _ in range(1000)}
    assert len(numbers) == 1000
    assert all(re.fullmatch(r"[0-9A-Za-z_\-|*]{6,32}", n) for n in numbers)


def test_query_pauses_grow_then_stay() -> None:
    far = NOW + timedelta(days=1)
    pauses = [next_query_at(now=NOW, queries_done=n, expires_at=far) - NOW for n in range(10)]
    assert pauses == sorted(pauses)
    assert pauses[0] == timedelta(seconds=15)
    assert pauses[-1] == pauses[-2] == timedelta(minutes=10)


def test_an_open_order_is_asked_about_at_its_expiry_at_the_latest() -> None:
    expiry = NOW + timedelta(seconds=5)
    assert next_query_at(now=NOW, queries_done=3, expires_at=expiry) == expiry
    later = expiry + timedelta(seconds=1)
    assert next_query_at(now=later, queries_done=0, expires_at=expiry) == later + timedelta(
        seconds=15
    )


def test_a_bill_compared_with_our_orders_reports_every_difference() -> None:
    bill = [
        BillLine("PP1", "T1", Decimal("50.00")),  # agrees
        BillLine("PP2", "T2", Decimal("30.00")),  # we missed it (still pending here)
        BillLine("PP3", "T3", Decimal("9.99")),  # amounts differ
        BillLine("PP9", "T9", Decimal("1.00")),  # never ours
    ]
    paid = {
        "PP1": OurPayment("PP1", "T1", Decimal("50.00"), "paid"),
        "PP3": OurPayment("PP3", "T3", Decimal("10.00"), "paid"),
        "PP4": OurPayment("PP4", "T4", Decimal("20.00"), "refunded"),  # not in the bill
    }
    known = {**paid, "PP2": OurPayment("PP2", None, Decimal("30.00"), "pending")}
    found = {(d.kind, d.out_trade_no) for d in compare_bill(bill, paid, known)}
    assert found == {
        ("paid_there_not_here", "PP2"),
        ("amount_differs", "PP3"),
        ("paid_there_not_here", "PP9"),
        ("paid_here_not_there", "PP4"),
    }
    assert compare_bill(bill[:1], {"PP1": paid["PP1"]}, known) == []


BILLS = Path(__file__).parent / "bills"
WECHAT_BILL = (BILLS / "wechatpay-tradebill.csv").read_text(encoding="utf-8")

ALIPAY_BILL = (BILLS / "alipay-trade-detail.csv").read_text(encoding="utf-8")


def test_trade_bills_are_read_as_each_provider_writes_them() -> None:
    assert parse_wechat_trade_bill(WECHAT_BILL) == [BillLine("PP1", "4200001", Decimal("50.00"))]
    assert parse_alipay_trade_bill(ALIPAY_BILL) == [
        BillLine("PP3", "2026120622001", Decimal("12.50"))
    ]
    with pytest.raises(ValueError, match="WeChat"):
        parse_wechat_trade_bill("a,b,c\n1,2,3\n")
