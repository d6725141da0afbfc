"""A payment's receipt (收据): its number, the amount in Chinese capitals, and the receipt
itself from the payment, the account and what the ledger posted for it.

The amount in capitals (人民币大写) follows the way banks write it (中国人民银行《支付结算
办法》, 正确填写票据和结算凭证的基本规定):

- digits 零壹贰叁肆伍陆柒捌玖, places 拾佰仟, sections 万 and 亿, then 元, 角, 分; a ten
  is 壹拾 (16.00 is 壹拾陆元整), as on a cheque;
- 整 after 元 when there are no jiao and fen, and after 角 when there are no fen (伍角整);
  never after 分;
- a run of zeros between two digits is one 零 (1,004.00 壹仟零肆元整; 100,700 壹拾万零柒佰);
  where the rules let the 零 be written or left out (the 万 or 元 digit zero and the next
  one not: 107,000.53, 1,680.32) we leave it out, the unit word standing in its place
  (壹拾万柒仟元伍角叁分, 壹仟陆佰捌拾元叁角贰分); a whole 万 section of zeros under 亿 is
  still one 零 (100,007,000 壹亿零柒仟元整);
- jiao zero and fen not: 零 after 元 (1,004.05 壹仟零肆元零伍分); under one yuan nothing
  stands before the jiao or fen (0.50 伍角整, 0.05 伍分).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from zoneinfo import ZoneInfo

from prepaid_common.contracts.api.receipts import PaymentReceipt, ReceiptRequest, ReceiptReversal
from prepaid_common.contracts.api.site_office import TenantProfile

LARGEST = Decimal("999999999999.99")
_DIGITS = "零壹贰叁肆伍陆柒捌玖"
_PLACES = ("", "拾", "佰", "仟")
_SECTIONS = ("", "万", "亿")


def in_capitals(amount: Decimal) -> str:
    """Return a yuan amount (0 to 999,999,999,999.99, whole fen) in Chinese capitals."""
    fen_total = amount * 100
    if not amount.is_finite() or fen_total != fen_total.to_integral_value():
        raise ValueError(f"{amount} is not a whole number of fen")
    if not Decimal(0) <= amount <= LARGEST:
        raise ValueError(f"{amount} is outside 0 to {LARGEST}")
    yuan, cents = divmod(int(fen_total), 100)
    jiao, fen = divmod(cents, 10)
    words = _integer(yuan) + "元" if yuan else ""
    if cents == 0:
        return (words or "零元") + "整"
    if jiao:
        words += _DIGITS[jiao] + "角"
    elif yuan:
        words += "零"
    return words + (_DIGITS[fen] + "分" if fen else "整")


def _integer(number: int) -> str:
    sections: list[int] = []  # lowest first: units, 万, 亿
    while number:
        number, section = divmod(number, 10_000)
        sections.append(section)
    words = ""
    skipped_zeros = False
    for index in reversed(range(len(sections))):
        section = sections[index]
        if section == 0:
            skipped_zeros = bool(words)
            continue
        # Zeros leading this section, or a whole section of them, after digits written.
        if words and (skipped_zeros or section < 1000):
            words += "零"
        words += _section(section) + _SECTIONS[index]
        skipped_zeros = False
    return words


def _section(section: int) -> str:
    """Four places (仟佰拾 and units) without leading or trailing zeros; inner runs as 零."""
    digits = [(section // 10**place) % 10 for place in range(3, -1, -1)]
    words = ""
    pending_zero = False
    for place, digit in zip(range(3, -1, -1), digits, strict=True):
        if digit == 0:
            pending_zero = bool(words)
            continue
        if pending_zero:
            words += "零"
            pending_zero = False
        words += _DIGITS[digit] + _PLACES[place]
    return words


def receipt_number(payment_id: str) -> str:
    """The receipt's number: from the payment id alone, so it is the same on every copy
    whatever changes later (the site's zone, a reversal)."""
    return "SJ" + payment_id.replace("-", "")[:16].upper()


@dataclass(frozen=True)
class TopUpPosting:
    """What the ledger holds for a payment's top-up: the balance right after its line,
    the part that paid old debt, and its reversal if any."""

    balance_after: Decimal
    to_arrears: Decimal
    reversal: ReceiptReversal | None


def reversal_reason(memo: str) -> str:
    """The operator's reason out of a reversal's memo (``reverses <kind> <id>: <reason>``,
    as ``ledger.reversal`` writes it)."""
    _, colon, reason = memo.partition(": ")
    return reason if colon else memo


def compose_receipt(
    payment: ReceiptRequest,
    *,
    account_name: str,
    profile: TenantProfile,
    posting: TopUpPosting | None,
    zone: ZoneInfo,
    site_name: str,
) -> PaymentReceipt:
    """The receipt of a payment; ``posting`` None: billing has not credited it yet."""
    cash = payment.method == "cash"
    status = "pending" if posting is None else "reversed" if posting.reversal else "credited"
    return PaymentReceipt(
        receipt_no=receipt_number(payment.id),
        payment_id=payment.id,
        site_name=site_name or None,
        account_id=payment.account_id,
        account_name=account_name,
        tenant_name=profile.tenant_name,
        building=profile.building,
        floor=profile.floor,
        room=profile.room,
        amount=payment.amount,
        amount_in_words=in_capitals(payment.amount),
        channel=payment.method,
        cashier=payment.operator if cash else None,
        counter_receipt=payment.reference if cash else None,
        transaction_id=None if cash else payment.reference,
        paid_at=payment.created_at.astimezone(zone),
        timezone=zone.key,
        status=status,
        balance_after=None if posting is None else posting.balance_after,
        to_arrears=Decimal("0.00") if posting is None else posting.to_arrears,
        reversal=None if posting is None else posting.reversal,
    )
