"""The payments service's HTTP API: cash top-ups at the counter and the payments taken."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from prepaid_common.contracts.identifiers import Identifier


class TopUpBody(BaseModel):
    """Cash paid at the counter for an account, as the public API takes it."""

    amount: Decimal = Field(
        gt=0, max_digits=12, decimal_places=2, description="Yuan, at most two decimals"
    )
    receipt: str = Field(
        min_length=1, max_length=64, pattern=r"^\S(.*\S)?$", description="Counter receipt number"
    )


class TopUpRequest(BaseModel):
    """A counter top-up as the gateway passes it to payments (checked there: 422 if not)."""

    account_id: Identifier
    amount: Decimal
    receipt: str
    operator: str = Field(min_length=1, max_length=64)


class PaymentView(BaseModel):
    """A payment taken; ``replayed`` when a repeated receipt returned the first one."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "0b6f1d9e-5c3a-4e4b-9a51-2f1c8d7e6a90",
                    "account_id": "shop:12",
                    "amount": "50.00",
                    "method": "cash",
                    "reference": "R-0001",
                    "operator": "ann",
                    "status": "succeeded",
                    "created_at": "2026-01-01T08:00:00Z",
                    "replayed": False,
                }
            ]
        }
    )

    id: str
    account_id: str
    amount: Decimal
    method: str
    reference: str
    operator: str
    status: str
    created_at: datetime
    replayed: bool = False


class PaymentPage(BaseModel):
    """A page of an account's payments, newest first."""

    items: list[PaymentView]
    limit: int
    offset: int


# --- provider orders (WeChat Pay, Alipay) ------------------------------------------------
ChannelName = Literal["wechat_native", "wechat_jsapi", "wechat_h5", "alipay_qr", "alipay_wap"]
OrderStatusName = Literal["pending", "paid", "closed", "expired", "refunded"]


class OrderBody(BaseModel):
    """A top-up to pay through a provider, as the public API takes it."""

    channel: ChannelName
    amount: Decimal = Field(
        gt=0, max_digits=12, decimal_places=2, description="Yuan, at most two decimals"
    )
    openid: str | None = Field(
        default=None, min_length=1, max_length=128, description="The payer (wechat_jsapi only)"
    )
    description: str = Field(default="Electricity top-up", min_length=1, max_length=127)


class OrderRequest(OrderBody):
    """A provider order as the gateway passes it to payments."""

    account_id: Identifier
    operator: str = Field(min_length=1, max_length=64)
    # The payer's address as the gateway saw it (wechat_h5 must send it to WeChat Pay).
    payer_ip: str | None = Field(default=None, max_length=45)


class OrderView(BaseModel):
    """A provider order and what the payer needs to pay it (the field of its channel)."""

    out_trade_no: str
    account_id: str
    channel: ChannelName
    amount: Decimal
    status: OrderStatusName
    operator: str
    created_at: datetime
    expires_at: datetime
    paid_at: datetime | None = None
    transaction_id: str | None = None
    refunded_amount: Decimal = Decimal("0.00")
    code_url: str | None = Field(default=None, description="wechat_native: show as a QR code")
    h5_url: str | None = Field(default=None, description="wechat_h5: open in the browser")
    qr_code: str | None = Field(default=None, description="alipay_qr: show as a QR code")
    pay_url: str | None = Field(default=None, description="alipay_wap: the signed URL to open")
    jsapi: dict[str, str] | None = Field(
        default=None, description="wechat_jsapi: the signed parameters for requestPayment"
    )


class ChannelState(BaseModel):
    """Whether a provider is configured here, and if not, why."""

    provider: Literal["wechatpay", "alipay"]
    enabled: bool
    detail: str


class ChannelStates(RootModel[list[ChannelState]]):
    """Each provider and whether it is on (a list)."""


class RefundBody(BaseModel):
    """Money to give back on a paid order, through its provider."""

    amount: Decimal = Field(gt=0, max_digits=12, decimal_places=2)
    reason: str = Field(min_length=1, max_length=80)


class RefundRequest(RefundBody):
    """A refund as the gateway passes it to payments."""

    operator: str = Field(min_length=1, max_length=64)


class RefundView(BaseModel):
    """A refund asked of a provider; ``succeeded`` once the provider says the money went back."""

    out_refund_no: str
    out_trade_no: str
    account_id: str
    amount: Decimal
    reason: str
    status: Literal["processing", "succeeded", "failed"]
    operator: str
    created_at: datetime
    succeeded_at: datetime | None = None


class PaymentIssue(BaseModel):
    """Something an operator must look at: a paid amount that differs, a payment we do not
    know, a difference in a provider's bill."""

    id: str
    kind: str
    provider: str
    out_trade_no: str | None
    detail: str
    created_at: datetime


class PaymentIssuePage(BaseModel):
    """A page of payment issues, newest first."""

    items: list[PaymentIssue]
    limit: int
    offset: int


class BillDifferenceView(BaseModel):
    """One difference between a provider's bill and our orders."""

    kind: Literal["paid_there_not_here", "paid_here_not_there", "amount_differs"]
    out_trade_no: str
    detail: str


class BillCheck(BaseModel):
    """A provider's daily trade bill compared with our orders."""

    provider: Literal["wechatpay", "alipay"]
    day: date
    trades: int
    differences: list[BillDifferenceView]
