"""The site office's API (物业营业厅): tenants and their premises, move-out and transfer,
the readings history, the cashier's shift close, postpaid terms and common-area
apportionment. Shapes only; the rules live in billing's domain.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints, model_validator

from prepaid_common.contracts.api.billing import AccountMode, Operator, TariffReference
from prepaid_common.contracts.identifiers import Identifier

Money = Annotated[Decimal, Field(max_digits=14, decimal_places=2)]
Register = Annotated[Decimal, Field(ge=0, max_digits=16, decimal_places=3)]
Text = Annotated[str, StringConstraints(max_length=100, strip_whitespace=True)]
Phone = Annotated[str, StringConstraints(pattern=r"^\+?[0-9][0-9 -]{4,19}$")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- tenants and premises ------------------------------------------------------------
class TenantProfile(_Body):
    """Who the tenant is and where the premises are; every field optional."""

    tenant_name: Text | None = None
    phone: Phone | None = None
    email: Annotated[str, StringConstraints(pattern=r"^[^@\s]{1,64}@[^@\s]{1,190}$")] | None = None
    building: Text | None = None
    floor: Text | None = None
    room: Text | None = None
    # Floor area in square metres: the weight of area apportionment (公摊按面积).
    area_m2: Decimal | None = Field(default=None, gt=0, max_digits=10, decimal_places=2)


class TenantRow(BaseModel):
    """An account as the front desk finds it."""

    account_id: str
    name: str
    mode: AccountMode
    balance: Decimal
    supply: Literal["on", "off"]
    meter_ids: list[str]
    profile: TenantProfile
    closed_at: datetime | None


class TenantPage(BaseModel):
    items: list[TenantRow]
    total: int
    limit: int
    offset: int


# --- readings history (抄表记录) -------------------------------------------------------
class ReadingRow(BaseModel):
    meter_id: str
    read_at: datetime
    energy_kwh: Decimal
    received_at: datetime


class ReadingPage(BaseModel):
    """Newest first; ``next_before`` continues the listing (None: no older readings)."""

    items: list[ReadingRow]
    limit: int
    next_before: datetime | None


# --- move-out (销户) and transfer (过户) ------------------------------------------------
class _Closing(_Body):
    # A meter's final register as read on site; the last reading when omitted.
    final_readings: dict[Identifier, Register] = Field(default_factory=dict, max_length=50)
    key: str = Field(min_length=1, max_length=100, description="Operation key: a repeat replays")
    reason: str = Field(min_length=1, max_length=400)
    operator: str = Operator


class MoveOutBody(_Closing):
    # What happens to credit left on the account: paid back (refund) or kept on it.
    settlement: Literal["refund", "keep"] = "refund"
    method: Literal["cash", "wechat", "alipay"] = "cash"


class NewTenant(_Body):
    id: Identifier
    name: str = Field(min_length=1, max_length=200)
    tariff_id: TariffReference | None = None
    profile: TenantProfile = Field(default_factory=TenantProfile)


class TransferBody(_Closing):
    new_account: NewTenant
    # The old tenant's credit: carried to the new account, or paid back to the old tenant.
    balance: Literal["carry", "refund"] = "refund"
    method: Literal["cash", "wechat", "alipay"] = "cash"


class FinalCharge(BaseModel):
    meter_id: str
    final_kwh: Decimal
    charge: Decimal


class AccountClosed(BaseModel):
    """What a move-out or transfer did, the same on a replay of its key."""

    account_id: str
    kind: Literal["move_out", "transfer"]
    final_charges: list[FinalCharge]
    refunded: Decimal
    carried: Decimal
    balance_after: Decimal
    meters_released: list[str]
    successor: str | None
    closed_at: datetime
    operator: str


# --- cashier shifts (收费员日结) -------------------------------------------------------
class ShiftCloseBody(_Body):
    counted_cash: Money = Field(ge=0)
    note: str = Field(default="", max_length=400)
    operator: str = Operator


class ShiftView(BaseModel):
    """A cashier's cash since the last close, from the ledger, against what was counted."""

    id: str | None  # None: the shift still open
    cashier: str
    opened_at: datetime | None  # the previous close; None for a cashier's first shift
    closed_at: datetime | None
    top_ups: int
    cash_in: Decimal
    refunds: int
    cash_out: Decimal
    expected_cash: Decimal
    counted_cash: Decimal | None
    difference: Decimal | None  # counted - expected
    note: str


# --- postpaid terms (后付费) ------------------------------------------------------------
class PostpaidTerms(_Body):
    # The bill for a month is due on this day of the next month.
    due_day: int = Field(default=15, ge=1, le=28)
    # Days after the due day before the late fee and the cut apply.
    grace_days: int = Field(default=0, ge=0, le=60)
    # Late fee (滞纳金) per day on the unpaid bill, e.g. 0.0005 = 0.05% a day.
    late_fee_rate: Decimal = Field(default=Decimal("0"), ge=0, le=Decimal("0.01"), decimal_places=6)
    cut_when_overdue: StrictBool = False


class PostpaidBill(BaseModel):
    """The last closed month's bill and where it stands."""

    account_id: str
    month: str  # YYYY-MM, the month billed
    billed: Decimal  # owed when the month closed
    unpaid: Decimal
    due_on: date
    overdue: bool
    late_fees: Decimal
    terms: PostpaidTerms


# --- common-area apportionment (公摊) ---------------------------------------------------
class ApportionmentRuleBody(_Body):
    id: Identifier
    name: str = Field(min_length=1, max_length=200)
    # The account the common-area meters are bound to: its energy cost for the month is
    # what gets shared.
    common_account_id: Identifier
    method: Literal["area", "consumption"]
    members: list[Identifier] = Field(min_length=1, max_length=2000)
    operator: str = Operator

    @model_validator(mode="after")
    def _members_apart(self) -> ApportionmentRuleBody:
        if len(set(self.members)) != len(self.members):
            raise ValueError("members must not repeat")
        if self.common_account_id in self.members:
            raise ValueError("the common account cannot share in its own cost")
        return self


class ApportionmentRule(BaseModel):
    id: str
    name: str
    common_account_id: str
    method: Literal["area", "consumption"]
    members: list[str]
    created_by: str
    created_at: datetime


class ApportionmentRunBody(_Body):
    month: Annotated[str, StringConstraints(pattern=r"^(19[7-9][0-9]|2[0-9]{3})-(0[1-9]|1[0-2])$")]
    operator: str = Operator


class ApportionmentShare(BaseModel):
    account_id: str
    weight: Decimal
    amount: Decimal


class ApportionmentRun(BaseModel):
    rule_id: str
    month: str
    total: Decimal
    method: Literal["area", "consumption"]
    shares: list[ApportionmentShare]
    posted_at: datetime
    operator: str
