"""Receipts (收据): the amount in Chinese capitals (人民币大写) as banks write it, exact for
every amount from 0.01 to 99,999,999.99 (read back digit by digit by a reader written apart
from it), the receipt's number, and what a receipt says of a payment pending, credited or
reversed."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from billing.domain.receipts import (
    TopUpPosting,
    compose_receipt,
    in_capitals,
    receipt_number,
    reversal_reason,
)
from hypothesis import example, given, settings
from hypothesis import strategies as st
from prepaid_common.contracts.api.receipts import ReceiptRequest, ReceiptReversal
from prepaid_common.contracts.api.site_office import TenantProfile

DIGITS = {c: i for i, c in enumerate("零壹贰叁肆伍陆柒捌玖")}
PLACES = {"拾": 10, "佰": 100, "仟": 1000}
SECTIONS = {"万": 10_000, "亿": 100_000_000}
LARGEST_TOP_UP_FEN = 9_999_999_999  # 99,999,999.99


def read_back(words: str) -> Decimal:
    """The amount the words say, read as a person would (an independent reader)."""
    body = words.removesuffix("整")
    integer_words, _, fraction = body.rpartition("元") if "元" in body else ("", "", body)
    total = section = digit = 0
    for char in integer_words:
        if char in DIGITS:
            digit = DIGITS[char]
        elif char in PLACES:
            section += digit * PLACES[char]
            digit = 0
        else:
            total += (section + digit) * SECTIONS[char]
            section = digit = 0
    total += section + digit
    fen = 0
    for value, unit in re.findall(r"([零壹贰叁肆伍陆柒捌玖])([角分])", fraction):
        fen += DIGITS[value] * (10 if unit == "角" else 1)
    return Decimal(total) + Decimal(fen) / 100


def zeros_expected(yuan: int) -> int:
    """How many 零 the integer part carries: one per run of zeros between two non-zero
    digits, except a run ending on the 万 digit (万 stands in for it, as the rules allow)."""
    digits = str(yuan)
    count = 0
    for match in re.finditer(r"(?<=[1-9])0+(?=[1-9])", digits):
        lowest_place = len(digits) - match.end()
        if lowest_place != 4:
            count += 1
    return count


BANK_EXAMPLES = [
    # The People's Bank's own examples (正确填写票据和结算凭证的基本规定).
    ("1680.32", "壹仟陆佰捌拾元叁角贰分"),
    ("107000.53", "壹拾万柒仟元伍角叁分"),
    ("325.04", "叁佰贰拾伍元零肆分"),
    ("6007.14", "陆仟零柒元壹角肆分"),
    ("1409.50", "壹仟肆佰零玖元伍角整"),
    ("1004.05", "壹仟零肆元零伍分"),
    ("100.00", "壹佰元整"),
    ("0.50", "伍角整"),
    ("0.05", "伍分"),
    ("0.01", "壹分"),
    ("123.45", "壹佰贰拾叁元肆角伍分"),
    ("16.00", "壹拾陆元整"),
    ("10.10", "壹拾元壹角整"),
    ("20000.09", "贰万元零玖分"),
    ("100700.00", "壹拾万零柒佰元整"),
    ("1000000.00", "壹佰万元整"),
    ("10000001.00", "壹仟万零壹元整"),
    ("10010000.00", "壹仟零壹万元整"),
    ("99999999.99", "玖仟玖佰玖拾玖万玖仟玖佰玖拾玖元玖角玖分"),
    ("100007000.00", "壹亿零柒仟元整"),
    ("100000000.00", "壹亿元整"),
    ("0.00", "零元整"),
]


@pytest.mark.parametrize(("amount", "words"), BANK_EXAMPLES)
def test_known_amounts_are_written_as_banks_write_them(amount: str, words: str) -> None:
    assert in_capitals(Decimal(amount)) == words


@pytest.mark.parametrize("amount", ["0.001", "-1.00", "NaN", "Infinity", "1000000000000.00"])
def test_an_amount_no_receipt_can_carry_is_refused(amount: str) -> None:
    with pytest.raises(ValueError, match=r"whole number of fen|outside"):
        in_capitals(Decimal(amount))


@settings(max_examples=3000, deadline=None)
@given(st.integers(min_value=1, max_value=LARGEST_TOP_UP_FEN))
@example(1)
@example(10)
@example(100)
@example(100_000_000)
@example(LARGEST_TOP_UP_FEN)
@example(100_400_005)
@example(1_000_000_001)
@example(1_000_700_000)
def test_every_amount_reads_back_exactly_and_keeps_the_zero_rules(fen: int) -> None:
    amount = Decimal(fen) / 100
    words = in_capitals(amount)
    assert read_back(words) == amount
    assert set(words) <= set("零壹贰叁肆伍陆柒捌玖拾佰仟万亿元角分整")
    yuan, cents = divmod(fen, 100)
    jiao, fen_digit = divmod(cents, 10)
    # 整 exactly when there are no fen; never 零 twice, at the start, before a unit word
    # or at the end.
    assert words.endswith("整") == (fen_digit == 0)
    assert "零零" not in words
    assert not re.search(r"零[元万亿角分整]|^零|零$", words)
    integer_words, _, fraction = words.partition("元")
    if yuan:
        assert integer_words.count("零") == zeros_expected(yuan)
        # Jiao zero and fen not: 元零; else nothing between 元 and the jiao.
        assert fraction.startswith("零") == (jiao == 0 and fen_digit != 0)
    else:
        assert "元" not in words
        assert "零" not in words
    # A ten is 壹拾, as on a cheque: a 拾 always has its digit.
    assert not re.search(r"(^|[^壹贰叁肆伍陆柒捌玖])拾", words)


@given(st.uuids(), st.uuids())
def test_the_receipt_number_is_the_payments_own(first: uuid.UUID, second: uuid.UUID) -> None:
    number = receipt_number(str(first))
    assert number == receipt_number(str(first))
    assert re.fullmatch(r"SJ[0-9A-F]{16}", number)
    if first.hex[:16] != second.hex[:16]:
        assert receipt_number(str(second)) != number


def payment(method: str = "cash", reference: str = "R-0001") -> ReceiptRequest:
    return ReceiptRequest(
        id="0b6f1d9e-5c3a-4e4b-9a51-2f1c8d7e6a90",
        account_id="shop:12",
        amount=Decimal("1004.05"),
        method=method,  # type: ignore[arg-type]
        reference=reference,
        operator="ann",
        created_at=datetime(2026, 1, 1, 16, 30, tzinfo=UTC),
    )


SHANGHAI = ZoneInfo("Asia/Shanghai")
ROOM = TenantProfile(tenant_name="王芳", building="A", floor="1", room="102")


def test_a_cash_receipt_names_the_cashier_and_the_balance_after() -> None:
    posting = TopUpPosting(
        balance_after=Decimal("1030.00"), to_arrears=Decimal("0.00"), reversal=None
    )
    receipt = compose_receipt(
        payment(),
        account_name="茶叶店",
        profile=ROOM,
        posting=posting,
        zone=SHANGHAI,
        site_name="翠苑物业",
    )
    assert receipt.receipt_no == "SJ0B6F1D9E5C3A4E4B"
    assert receipt.amount_in_words == "壹仟零肆元零伍分"
    assert (receipt.cashier, receipt.counter_receipt, receipt.transaction_id) == (
        "ann",
        "R-0001",
        None,
    )
    assert receipt.paid_at.isoformat() == "2026-01-02T00:30:00+08:00"  # the site's day
    assert (receipt.status, receipt.balance_after) == ("credited", Decimal("1030.00"))
    assert (receipt.tenant_name, receipt.room, receipt.site_name) == ("王芳", "102", "翠苑物业")


def test_a_provider_receipt_names_its_transaction_and_no_cashier() -> None:
    receipt = compose_receipt(
        payment("wechat", "4200001234202601011234567890"),
        account_name="茶叶店",
        profile=TenantProfile(),
        posting=None,
        zone=SHANGHAI,
        site_name="",
    )
    assert (receipt.cashier, receipt.counter_receipt) == (None, None)
    assert receipt.transaction_id == "4200001234202601011234567890"
    # Not in the ledger yet: no balance after to state.
    assert (receipt.status, receipt.balance_after, receipt.site_name) == ("pending", None, None)


def test_a_reversed_payments_receipt_is_void_and_says_why() -> None:
    memo = "reverses top_up 7c1d: 收错户号"
    reversal = ReceiptReversal(
        transaction_id="9f00",
        reversed_at=datetime(2026, 1, 2, tzinfo=UTC),
        operator="boss",
        reason=reversal_reason(memo),
    )
    posting = TopUpPosting(
        balance_after=Decimal("1030.00"), to_arrears=Decimal("0.00"), reversal=reversal
    )
    receipt = compose_receipt(
        payment(),
        account_name="茶叶店",
        profile=ROOM,
        posting=posting,
        zone=SHANGHAI,
        site_name="",
    )
    assert receipt.status == "reversed"
    assert receipt.reversal is not None
    assert receipt.reversal.reason == "收错户号"
