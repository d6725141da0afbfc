"""The payments service's HTTP API: cash top-ups at the counter and the payments taken."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, Field

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
