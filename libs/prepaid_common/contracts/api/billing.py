"""Billing's HTTP API: the request bodies and the data shapes they carry.

The gateway validates public requests with these same models before it calls billing, so a
body one accepts the other accepts. Shapes only (fields and their validation); the rules
that use them (what a tariff charges, when hours are friendly) live in billing's domain.
"""

from __future__ import annotations

from datetime import datetime, time
from decimal import Decimal
from typing import Annotated, Generic, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    field_validator,
    model_validator,
)

from prepaid_common.contracts.dates import IsoDate, LocalTime
from prepaid_common.contracts.identifiers import Identifier
from prepaid_common.contracts.messages import TouPeriod

# A day of the week: 0 = Monday ... 6 = Sunday.
Weekday = Annotated[int, Field(ge=0, le=6, strict=True)]

Period = TouPeriod
PERIODS: tuple[Period, ...] = ("sharp", "peak", "flat", "valley")
ZERO = Decimal(0)

Operator = Field(default="system", min_length=1, max_length=64)
# A tariff that exists: billing names the flat tariffs it makes itself by their price
# ("flat-0.8"), so a reference takes any id a tariff may have, not only a new one's.
TariffReference = Annotated[str, StringConstraints(min_length=1, max_length=64)]


# --- tariffs ---------------------------------------------------------------------------
class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Tier(_Shape):
    """A band of cumulative consumption in the cycle; the last band has no upper bound."""

    up_to_kwh: Decimal | None = Field(default=None, gt=0)
    surcharge: Decimal = Field(default=ZERO, ge=0, max_digits=10, decimal_places=4)


class PeriodSpan(_Shape):
    """From ``start`` (HH:MM, local time) until the next span's start, the day is ``period``."""

    start: LocalTime
    period: Period


class Season(_Shape):
    """The months a day plan applies to, for workdays and for rest days."""

    months: list[int] = Field(min_length=1)
    workday: list[PeriodSpan] = Field(min_length=1)
    # Weekends and holidays; the workday plan when omitted.
    rest_day: list[PeriodSpan] | None = None

    @model_validator(mode="after")
    def _check(self) -> Season:
        if any(not 1 <= m <= 12 for m in self.months):
            raise ValueError("months are 1-12")
        for plan in (self.workday, self.rest_day or []):
            starts = [span.start for span in plan]
            if starts != sorted(starts) or len(set(starts)) != len(starts):
                raise ValueError("period spans must start in increasing order")
            if starts and starts[0] != time(0, 0):
                raise ValueError("the first period span must start at 00:00")
        return self


class TouCalendar(_Shape):
    """Which period each local time belongs to, by season and day type."""

    seasons: list[Season] = Field(min_length=1)
    rest_weekdays: list[Weekday] = Field(default_factory=lambda: [5, 6], description="0=Monday")
    holidays: list[IsoDate] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> TouCalendar:
        covered = [m for season in self.seasons for m in season.months]
        if sorted(covered) != list(range(1, 13)):
            raise ValueError("seasons must cover each month exactly once")
        return self


class TariffDefinition(_Shape):
    """A tariff as operators write it (stored as JSON, versioned)."""

    kind: Literal["flat", "tou", "tiered", "tiered_tou"]
    price_per_kwh: Decimal | None = Field(default=None, ge=0, max_digits=10, decimal_places=4)
    period_prices: dict[Period, Decimal] | None = None
    # Used to split consumption into periods when a meter has no TOU registers.
    calendar: TouCalendar | None = None
    tiers: list[Tier] = Field(default_factory=list)
    cycle: Literal["monthly", "yearly"] = "monthly"
    cycle_reset_day: int = Field(default=1, ge=1, le=28)
    cycle_reset_month: int = Field(default=1, ge=1, le=12)
    loss_factor: Decimal = Field(default=ZERO, ge=0, lt=1, max_digits=6, decimal_places=4)
    daily_charge: Decimal = Field(default=ZERO, ge=0, max_digits=12, decimal_places=2)
    monthly_charge: Decimal = Field(default=ZERO, ge=0, max_digits=12, decimal_places=2)

    @model_validator(mode="after")
    def _check(self) -> TariffDefinition:
        if self.uses_periods:
            if self.period_prices is None or set(self.period_prices) != set(PERIODS):
                raise ValueError(f"{self.kind} needs period_prices for {', '.join(PERIODS)}")
            if any(
                p < 0 or p != p.quantize(Decimal("0.0001")) for p in self.period_prices.values()
            ):
                raise ValueError("period prices are >= 0 with at most 4 decimals")
        elif self.price_per_kwh is None:
            raise ValueError(f"{self.kind} needs price_per_kwh")
        if self.kind in ("tiered", "tiered_tou"):
            if not self.tiers or self.tiers[-1].up_to_kwh is not None:
                raise ValueError("tiers must end with a band without up_to_kwh")
            bounds = [t.up_to_kwh for t in self.tiers[:-1]]
            known = [b for b in bounds if b is not None]
            if len(known) != len(bounds) or known != sorted(set(known)):
                raise ValueError("tier bounds must increase")
        elif self.tiers:
            raise ValueError(f"a {self.kind} tariff has no tiers")
        return self

    @property
    def uses_periods(self) -> bool:
        """Whether the tariff prices each time-of-use period on its own."""
        return self.kind in ("tou", "tiered_tou")


class TariffBody(BaseModel):
    id: Identifier
    name: str = Field(min_length=1, max_length=200)
    definition: TariffDefinition
    # A new version of an existing tariff takes effect here (now when omitted).
    effective_from: datetime | None = None
    operator: str = Operator


# --- site policy -----------------------------------------------------------------------
class FriendlyWindow(_Shape):
    """A daily window with no automatic cut; it may wrap past midnight (20:00-08:00)."""

    start: LocalTime
    end: LocalTime


class SitePolicy(_Shape):
    """Site-wide rules an operator sets: the local time zone and the friendly hours."""

    timezone: str = Field(default="Asia/Shanghai", max_length=64, examples=["Asia/Shanghai"])
    friendly_windows: list[FriendlyWindow] = Field(default_factory=list)
    # Whole days without automatic cuts: 0 = Monday ... 6 = Sunday.
    friendly_weekdays: list[Weekday] = Field(default_factory=list)
    holidays: list[IsoDate] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, timezone: str) -> str:
        # A zone stored but unknown would dead-letter every reading and fail statements.
        try:
            ZoneInfo(timezone)
        except (ValueError, ZoneInfoNotFoundError) as error:
            raise ValueError(f"unknown time zone {timezone!r} (e.g. Asia/Shanghai)") from error
        return timezone

    @property
    def zone(self) -> ZoneInfo:
        """The site's local time zone."""
        return ZoneInfo(self.timezone)


# --- accounts --------------------------------------------------------------------------
AccountMode = Literal["prepaid", "postpaid"]


class AccountTerms(BaseModel):
    mode: AccountMode = "prepaid"
    trip_line: Decimal = Field(default=Decimal("0.00"), max_digits=14, decimal_places=2)
    warning_line: Decimal = Field(default=Decimal("10.00"), max_digits=14, decimal_places=2)
    overdraft_limit: Decimal = Field(default=Decimal("0.00"), ge=0, max_digits=14, decimal_places=2)
    balance_cap: Decimal | None = Field(default=None, gt=0, max_digits=14, decimal_places=2)
    debt_share: Decimal = Field(default=Decimal("0"), ge=0, le=1, max_digits=5, decimal_places=4)
    debt_daily: Decimal = Field(default=Decimal("0.00"), ge=0, max_digits=14, decimal_places=2)
    # Strict: a 0 or "no" is a client's mistake to refuse, not a false to act on.
    protected: StrictBool = False
    # The debt ceiling of friendly hours: inside them a meter stays on only while the
    # balance is above the cut line less this much (docs/billing.md, "Prepaid rules").
    friendly_debt_limit: Decimal = Field(
        default=Decimal("20.00"), ge=0, max_digits=14, decimal_places=2
    )


class OpenAccount(AccountTerms):
    id: Identifier
    name: str = Field(min_length=1, max_length=200)
    tariff_id: TariffReference | None = None
    price_per_kwh: Decimal | None = Field(default=None, gt=0, max_digits=10, decimal_places=4)
    groups: list[str] = Field(default_factory=list, max_length=20)
    operator: str = Operator


class AccountChanges(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    tariff_id: TariffReference | None = None
    mode: AccountMode | None = None
    trip_line: Decimal | None = Field(default=None, max_digits=14, decimal_places=2)
    warning_line: Decimal | None = Field(default=None, max_digits=14, decimal_places=2)
    overdraft_limit: Decimal | None = Field(default=None, ge=0, max_digits=14, decimal_places=2)
    balance_cap: Decimal | None = Field(default=None, gt=0, max_digits=14, decimal_places=2)
    debt_share: Decimal | None = Field(default=None, ge=0, le=1, max_digits=5, decimal_places=4)
    debt_daily: Decimal | None = Field(default=None, ge=0, max_digits=14, decimal_places=2)
    protected: StrictBool | None = None
    friendly_debt_limit: Decimal | None = Field(default=None, ge=0, max_digits=14, decimal_places=2)
    groups: list[str] | None = Field(default=None, max_length=20)


class TopUpCheck(BaseModel):
    amount: Decimal = Field(gt=0, max_digits=14, decimal_places=2)
    # Counter cash: the receipt. The headroom is then held for it until it is credited, and
    # the same receipt asked again is let through as the first time was.
    key: str | None = Field(default=None, min_length=1, max_length=64)


# --- money an operator moves -----------------------------------------------------------
class OperatorMoney(BaseModel):
    amount: Decimal = Field(gt=0, max_digits=14, decimal_places=2)
    key: str = Field(min_length=1, max_length=100, description="Operation key: repeats are refused")
    reason: str = Field(min_length=1, max_length=400)
    operator: str = Operator
    method: str = Field(default="cash", pattern=r"^(cash|wechat|alipay)$")


class ReversalBody(BaseModel):
    reason: str = Field(min_length=1, max_length=400)
    operator: str = Operator


# --- meters ----------------------------------------------------------------------------
class BindMeter(BaseModel):
    meter_id: Identifier
    account_id: Identifier
    multiplier: Decimal = Field(default=Decimal(1), gt=0, max_digits=12, decimal_places=4)
    tariff_id: TariffReference | None = None
    # The meter keeps its own credit: top-ups are pushed to it as purchases (None: unchanged).
    local_prepaid: StrictBool | None = None
    # Yuan per kWh the meter debits its own credit by (for the credit check).
    local_price: Decimal | None = Field(default=None, ge=0, max_digits=10, decimal_places=4)
    operator: str = Operator


class SwapMeter(BaseModel):
    new_meter_id: Identifier
    old_final_kwh: Decimal = Field(ge=0, max_digits=16, decimal_places=3)
    new_start_kwh: Decimal = Field(ge=0, max_digits=16, decimal_places=3)
    operator: str = Operator


# --- supply: holds and load shedding ---------------------------------------------------
class HoldBody(BaseModel):
    scope: Literal["meter", "group", "global"]
    target: str = Field(default="*", min_length=1, max_length=100)
    until: datetime | None = None
    reason: str = Field(min_length=1, max_length=400)
    operator: str = Operator


class ShedBody(BaseModel):
    group: str = Field(min_length=1, max_length=100)
    reason: str = Field(min_length=1, max_length=400)
    operator: str = Operator


# === responses =========================================================================
T = TypeVar("T")

# Money, energy and prices are decimals, sent as strings exactly as billing stores them
# ("12.50", "0.2500", "9.500000"); instants are ISO 8601 in UTC.


class Items(BaseModel, Generic[T]):
    """A list of rows, in the order the route defines."""

    items: list[T]


class Page(BaseModel, Generic[T]):
    """A page of rows, with the whole count."""

    items: list[T]
    total: int
    limit: int
    offset: int


class Window(BaseModel, Generic[T]):
    """A page of rows (newest first) without the whole count."""

    items: list[T]
    limit: int
    offset: int


# --- tariffs ---------------------------------------------------------------------------
class TariffSummary(BaseModel):
    id: str
    name: str
    created_at: datetime


class TariffVersionView(BaseModel):
    id: str
    tariff_id: str
    effective_from: datetime
    definition: TariffDefinition
    created_by: str
    created_at: datetime


class TariffView(TariffSummary):
    versions: list[TariffVersionView]


class TariffDefined(TariffView):
    """A tariff after a version was added, and that version's id."""

    version_id: str


# --- accounts --------------------------------------------------------------------------
class MeterSupply(BaseModel):
    meter_id: str
    supply: Literal["on", "off"]


class AccountView(BaseModel):
    """An account's terms, balances, meters and groups."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "shop:12",
                    "name": "Shop 12",
                    "tariff_id": "flat-1.25",
                    "mode": "prepaid",
                    "trip_line": "0.00",
                    "warning_line": "10.00",
                    "overdraft_limit": "0.00",
                    "balance_cap": "500.00",
                    "debt_share": "0.0000",
                    "debt_daily": "0.00",
                    "protected": False,
                    "created_at": "2026-01-01T00:00:00Z",
                    "balance": "12.50",
                    "arrears": "0.00",
                    "meter_ids": ["M1"],
                    "supply": "on",
                    "meters": [{"meter_id": "M1", "supply": "on"}],
                    "groups": ["block-a"],
                }
            ]
        }
    )

    id: str
    name: str
    tariff_id: str
    mode: AccountMode
    trip_line: Decimal
    warning_line: Decimal
    overdraft_limit: Decimal
    balance_cap: Decimal | None
    debt_share: Decimal
    debt_daily: Decimal
    protected: bool
    friendly_debt_limit: Decimal = Decimal("20.00")
    created_at: datetime
    balance: Decimal
    arrears: Decimal
    meter_ids: list[str]
    # "off" when any meter of the account is off.
    supply: Literal["on", "off"]
    meters: list[MeterSupply]
    groups: list[str]


class TopUpAcceptable(BaseModel):
    status: Literal["acceptable"] = "acceptable"


class LedgerLine(BaseModel):
    """One entry on an account's balance, with the balance after it."""

    transaction_id: str
    operation_key: str
    kind: str
    memo: str
    operator: str
    reverses: str | None
    amount: Decimal
    balance_after: Decimal
    created_at: datetime


class PostedTransaction(BaseModel):
    transaction_id: str


# --- meters ----------------------------------------------------------------------------
class MeterBound(BaseModel):
    meter_id: str
    account_id: str
    local_prepaid: bool
    local_price: Decimal | None


class MeterBinding(BaseModel):
    meter_id: str
    account_id: str
    supply: Literal["on", "off"]
    multiplier: Decimal
    local_prepaid: bool
    local_price: Decimal | None


class MeterHistoryEvent(BaseModel):
    id: int
    meter_id: str
    account_id: str
    event: Literal["bound", "swapped_out", "swapped_in", "unbound"]
    final_kwh: Decimal | None
    detail: str
    operator: str
    at: datetime


class LocalCreditState(BaseModel):
    """A local-prepaid meter's purchase count, credit and energy register at one moment."""

    purchase_count: int
    credit: Decimal | None
    energy_kwh: Decimal | None
    read_at: datetime | None


class LocalPurchase(BaseModel):
    id: str
    account_id: str
    operation_key: str
    amount: Decimal
    purchase_count: int | None
    status: str
    pushes: int
    error: str
    created_at: datetime
    confirmed_at: datetime | None


class LocalCreditView(BaseModel):
    """A local-prepaid meter's baseline, latest read-back and purchases (newest first)."""

    meter_id: str
    local_price: Decimal | None
    baseline: LocalCreditState | None
    meter: LocalCreditState | None
    purchase_count_mismatch: bool
    local_credit_mismatch: bool
    purchases: list[LocalPurchase]


class SupplyEvent(BaseModel):
    id: int
    account_id: str
    meter_id: str
    action: Literal["trip", "close"]
    reason: str
    at: datetime


# --- holds and load shedding -----------------------------------------------------------
class Created(BaseModel):
    """The id of what was just created."""

    id: str


class HoldView(BaseModel):
    id: str
    scope: Literal["meter", "group", "global"]
    target: str
    until: datetime | None
    reason: str
    operator: str
    created_at: datetime
    released_at: datetime | None


class ShedView(BaseModel):
    id: str
    group_name: str
    reason: str
    operator: str
    started_at: datetime
    ended_at: datetime | None


# --- reports ---------------------------------------------------------------------------
class UsagePeriod(BaseModel):
    # A local day (YYYY-MM-DD) or month (YYYY-MM).
    period: str
    metered_kwh: Decimal
    billed_kwh: Decimal
    cost: Decimal


class UsageReport(BaseModel):
    items: list[UsagePeriod]
    granularity: Literal["day", "month"]


class Statement(BaseModel):
    """A monthly statement: opening, movements by kind, closing, arrears, amount due."""

    account_id: str
    name: str
    mode: AccountMode
    month: str
    opening_balance: Decimal
    movements: dict[str, Decimal]
    closing_balance: Decimal
    arrears: Decimal
    energy_kwh: Decimal
    amount_due: Decimal


class DunningItem(BaseModel):
    """An account that owes money (催缴单): a negative balance or unpaid arrears."""

    account_id: str
    name: str
    mode: AccountMode
    balance: Decimal
    arrears: Decimal
    amount_due: Decimal


class Anomaly(BaseModel):
    """One episode of an anomaly: a run of the same condition on one meter, told once."""

    id: int
    meter_id: str
    kind: str
    detail: str  # the latest occurrence's
    at: datetime  # when the episode began
    count: int  # occurrences in the episode
    last_at: datetime  # the latest occurrence
    # When the episode ended (a reading of the meter accepted again); null while it lasts.
    # An anomaly told once by its nature (a refused purchase, a low balance) ends as it begins.
    ended_at: datetime | None


class LedgerCheck(BaseModel):
    """The sum of every entry (always zero), the transactions that do not balance, and the
    ledger accounts whose balance projection differs from the sum of their entries."""

    sum: Decimal
    unbalanced: list[str]
    projection_mismatches: list[str]
