"""A payment's receipt (收据): what the cashier hands the tenant for a top-up at the counter,
and what a tenant fetches for a WeChat Pay or Alipay payment. Shapes only: billing composes
it (the ledger knows the balance after and a reversal), the gateway prints it."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from prepaid_common.contracts.identifiers import Identifier

Channel = Literal["cash", "wechat", "alipay"]


class ReceiptRequest(BaseModel):
    """The payment as payments recorded it, which the gateway asks billing to write up."""

    id: Identifier
    account_id: Identifier
    amount: Decimal = Field(gt=0, max_digits=14, decimal_places=2)
    method: Channel
    reference: str = Field(min_length=1, max_length=64)
    operator: str = Field(min_length=1, max_length=64)
    created_at: datetime


class ReceiptReversal(BaseModel):
    """The reversal (冲正) that voided the payment's top-up."""

    transaction_id: str
    reversed_at: datetime
    operator: str
    reason: str


class PaymentReceipt(BaseModel):
    """A payment's receipt; ``status`` ``reversed`` means it is void (作废)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "receipt_no": "SJ0B6F1D9E5C3A4E4B",
                    "payment_id": "0b6f1d9e-5c3a-4e4b-9a51-2f1c8d7e6a90",
                    "site_name": "翠苑物业",
                    "account_id": "shop:12",
                    "account_name": "一楼茶叶店",
                    "tenant_name": "王芳",
                    "building": "A",
                    "floor": "1",
                    "room": "102",
                    "amount": "123.45",
                    "amount_in_words": "壹佰贰拾叁元肆角伍分",
                    "channel": "cash",
                    "cashier": "ann",
                    "counter_receipt": "R-0001",
                    "transaction_id": None,
                    "paid_at": "2026-01-01T16:00:00+08:00",
                    "timezone": "Asia/Shanghai",
                    "status": "credited",
                    "balance_after": "150.20",
                    "to_arrears": "0.00",
                    "reversal": None,
                }
            ]
        }
    )

    receipt_no: str = Field(description="The receipt's number, the same every time it is fetched")
    payment_id: str
    site_name: str | None = Field(description="PREPAID_SITE_NAME; null when not configured")
    account_id: str
    account_name: str
    tenant_name: str | None
    building: str | None
    floor: str | None
    room: str | None
    amount: Decimal
    amount_in_words: str = Field(description="The amount in Chinese capitals (人民币大写)")
    channel: Channel
    cashier: str | None = Field(description="Cash: the operator who took it")
    counter_receipt: str | None = Field(description="Cash: the number the cashier recorded")
    transaction_id: str | None = Field(description="WeChat Pay or Alipay: their transaction id")
    paid_at: datetime = Field(description="When the payment was recorded, in the site's zone")
    timezone: str
    status: Literal["credited", "pending", "reversed"] = Field(
        description="pending: not in the ledger yet (balance_after null); reversed: void"
    )
    balance_after: Decimal | None = Field(
        description="The account's balance right after this top-up, as its ledger line shows"
    )
    to_arrears: Decimal = Field(description="The part that paid old debt (debt_share)")
    reversal: ReceiptReversal | None
