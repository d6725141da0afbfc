"""Versioned message contracts. JSON on the wire; money and energy as decimal strings.

A message type name ends in its version (``reading.v1``). A breaking change adds a new
model with the next version; consumers keep the old one until producers have moved. An
added optional field (default None) keeps the version; models refuse unknown fields, so
consumers are upgraded before the producers that fill it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

RelayState = Literal["open", "closed"]
TouPeriod = Literal["sharp", "peak", "flat", "valley"]
RelayAction = Literal["trip", "close"]
# What a command does at the meter: switch the relay, push a purchase (local credit),
# switch hold-power (保电: the meter refuses trips while it is on), set its clock, set
# the two credit levels its alarm sounds at, or set the power limit (限功率, kW) above which
# the meter trips its own relay.
CommandAction = Literal[
    "trip", "close", "credit", "hold_on", "hold_off", "time_set", "alarm_thresholds", "power_limit"
]


def utcnow() -> datetime:
    """Return the current time, timezone-aware in UTC."""
    return datetime.now(UTC)


class Message(BaseModel):
    """Base of every message: subclasses name their wire type and routing key."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    TYPE: ClassVar[str]

    def routing_key(self) -> str:
        """Return the key consumers bind to: ``<type>.<entity id>``."""
        raise NotImplementedError


class ReadingV1(Message):
    """A meter's cumulative registers, as read by the collector."""

    TYPE: ClassVar[str] = "reading.v1"
    meter_id: str
    dtu_id: str
    read_at: datetime
    energy_kwh: Decimal = Field(ge=0, description="Total active energy register, kWh")
    # The meter's own time-of-use registers (kWh), when its profile has them.
    tou_kwh: dict[TouPeriod, Decimal] | None = None
    relay: RelayState | None = None
    power_kw: Decimal | None = None
    # A local-prepaid meter's own credit (yuan) and purchase count, when its profile has them.
    local_credit: Decimal | None = None
    purchase_count: int | None = Field(default=None, ge=0)

    def routing_key(self) -> str:
        return f"{self.TYPE}.{self.meter_id}"


class ReadingBatchV1(Message):
    """Many meters' readings in one message, as a collector writes them.

    One message, one outbox row and one publish for a batch instead of one each: at city
    scale the envelope around a reading cost more than the reading. Readings keep their
    order within a batch, and a collector publishes its batches in order, so one meter's
    readings still arrive in the order they were taken.
    """

    TYPE: ClassVar[str] = "reading.batch.v1"
    # Who wrote the batch (a collector instance): the end of the routing key.
    source: str = Field(min_length=1)
    readings: list[ReadingV1] = Field(min_length=1)

    def routing_key(self) -> str:
        return f"{self.TYPE}.{self.source}"


class MeterStatusV1(Message):
    """A meter came online or went offline."""

    TYPE: ClassVar[str] = "meter.status.v1"
    meter_id: str
    dtu_id: str
    online: bool
    at: datetime
    reason: str = ""

    def routing_key(self) -> str:
        return f"{self.TYPE}.{self.meter_id}"


class RelayRequestedV1(Message):
    """Billing asks for a meter's supply to be cut (trip) or restored (close)."""

    TYPE: ClassVar[str] = "relay.requested.v1"
    request_id: str
    meter_id: str
    account_id: str
    action: RelayAction
    reason: str
    at: datetime
    # The group command this request belongs to (``shed:<id>``, ``shed:<id>:end``), whose
    # progress control reports; None for a meter's own decision.
    batch: str | None = None

    def routing_key(self) -> str:
        return f"{self.TYPE}.{self.meter_id}"


class SupplyDecidedV1(Message):
    """Billing's decided supply for a meter that stands without a change to ask for.

    Said when a meter is bound or swapped in: its relay may stand either way (left open by
    a previous tenant, or closed on a meter replacing a cut one), and control holds every
    relay to its meter's decided supply.
    """

    TYPE: ClassVar[str] = "supply.decided.v1"
    meter_id: str
    account_id: str
    supply: Literal["on", "off"]
    reason: str
    at: datetime

    def routing_key(self) -> str:
        return f"{self.TYPE}.{self.meter_id}"


class CreditRequestedV1(Message):
    """Billing asks for a purchase to be pushed to a local-prepaid meter.

    The meter takes only its purchase count + 1; the same count again changes nothing, so
    a push asked for again (a new ``request_id``) after a failure is safe.
    """

    TYPE: ClassVar[str] = "credit.requested.v1"
    request_id: str
    meter_id: str
    account_id: str
    amount: Decimal = Field(gt=0, description="Yuan added to the meter's credit")
    purchase_count: int = Field(ge=1)
    # The ledger transaction the purchase comes from (``payment:<id>``).
    operation_key: str
    at: datetime

    def routing_key(self) -> str:
        return f"{self.TYPE}.{self.meter_id}"


class CommandRequestV1(Message):
    """Control tells the owning collector to execute a sealed command."""

    TYPE: ClassVar[str] = "command.request.v1"
    command_id: str
    meter_id: str
    action: CommandAction
    issued_at: datetime
    expires_at: datetime
    # The sealed command (see control.domain sealing); collectors verify before executing.
    envelope: str
    # A purchase (action "credit") only; the sealed envelope carries both as well.
    amount: Decimal | None = Field(default=None, gt=0)
    purchase_count: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _purchase_fields(self) -> CommandRequestV1:
        purchase = (self.amount, self.purchase_count)
        if self.action == "credit" and None in purchase:
            raise ValueError("a credit command needs amount and purchase_count")
        if self.action != "credit" and purchase != (None, None):
            raise ValueError("amount and purchase_count belong to credit commands only")
        return self

    def routing_key(self) -> str:
        return f"{self.TYPE}.{self.meter_id}"


class CommandResultV1(Message):
    """The collector's report of one command's execution."""

    TYPE: ClassVar[str] = "command.result.v1"
    command_id: str
    meter_id: str
    succeeded: bool
    relay: RelayState | None = None
    error: str = ""
    # False when trying the same command again cannot help (refused envelope, a meter
    # model without a relay, expired): control then fails it at once instead of retrying.
    retryable: bool = True
    at: datetime

    def routing_key(self) -> str:
        return f"{self.TYPE}.{self.meter_id}"


class CommandOutcomeV1(Message):
    """Control's final word on a command, after retries."""

    TYPE: ClassVar[str] = "command.outcome.v1"
    command_id: str
    meter_id: str
    action: CommandAction
    status: Literal["succeeded", "failed", "expired"]
    error: str = ""
    # False when the point of execution refused the command (a meter refusing a purchase
    # count, a refused envelope): asking again later cannot help either.
    retryable: bool = True
    # Billing's request this command came from, and a purchase's count.
    request_id: str | None = None
    purchase_count: int | None = None
    at: datetime

    def routing_key(self) -> str:
        return f"{self.TYPE}.{self.meter_id}"


class PaymentSucceededV1(Message):
    """Money arrived for an account (cash at the counter or a provider)."""

    TYPE: ClassVar[str] = "payment.succeeded.v1"
    payment_id: str
    account_id: str
    amount: Decimal = Field(gt=0)
    method: Literal["cash", "wechat", "alipay"]
    reference: str
    at: datetime
    # Who took the money (the cashier's user name at the counter); optional, so older
    # messages still open (the ledger then says "system").
    operator: str | None = Field(default=None, max_length=64)

    def routing_key(self) -> str:
        return f"{self.TYPE}.{self.account_id}"


class BalanceChangedV1(Message):
    """An account's balance after a ledger transaction."""

    TYPE: ClassVar[str] = "balance.changed.v1"
    account_id: str
    balance: Decimal
    transaction_id: str
    kind: str
    at: datetime

    def routing_key(self) -> str:
        return f"{self.TYPE}.{self.account_id}"


class AnomalyV1(Message):
    """Something in the field that must not be billed and needs an operator's eye."""

    TYPE: ClassVar[str] = "anomaly.v1"
    meter_id: str
    kind: str
    detail: str
    at: datetime

    def routing_key(self) -> str:
        return f"{self.TYPE}.{self.meter_id}"


class BalanceLowV1(Message):
    """An account's balance went down through one of its two warning levels.

    Level 1 is the account's warning line (said once per crossing, re-armed when the
    balance rises above it); level 2 is its cut line (trip line less overdraft), reached
    whether or not the supply goes off at once (friendly hours, a hold). Consumers key a
    crossing on (account, level) and re-arm on a balance above ``line``.
    """

    TYPE: ClassVar[str] = "balance.low.v1"
    account_id: str
    level: Literal[1, 2]
    balance: Decimal
    line: Decimal
    at: datetime

    def routing_key(self) -> str:
        return f"{self.TYPE}.{self.account_id}"


class CutImminentV1(Message):
    """An account's supply is kept on only by friendly hours: it is cut when they end."""

    TYPE: ClassVar[str] = "cut.imminent.v1"
    account_id: str
    meter_id: str
    balance: Decimal
    at: datetime

    def routing_key(self) -> str:
        return f"{self.TYPE}.{self.account_id}"


class PaymentIssueV1(Message):
    """Payments flagged something for an operator (an amount that differs, an unknown
    payment, a bill difference); ``issue_id`` is the same however often it is raised."""

    TYPE: ClassVar[str] = "payment.issue.v1"
    issue_id: str
    kind: str
    provider: str
    out_trade_no: str | None = None
    detail: str
    at: datetime

    def routing_key(self) -> str:
        return f"{self.TYPE}.{self.provider}"


MESSAGE_TYPES: dict[str, type[Message]] = {
    model.TYPE: model
    for model in (
        ReadingV1,
        ReadingBatchV1,
        MeterStatusV1,
        RelayRequestedV1,
        SupplyDecidedV1,
        CreditRequestedV1,
        CommandRequestV1,
        CommandResultV1,
        CommandOutcomeV1,
        PaymentSucceededV1,
        BalanceChangedV1,
        AnomalyV1,
        BalanceLowV1,
        CutImminentV1,
        PaymentIssueV1,
    )
}


class Envelope(BaseModel):
    """What travels on the bus: an id for idempotency, the type, the key and the body."""

    model_config = ConfigDict(frozen=True)
    message_id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    type: str
    routing_key: str
    producer: str
    payload: dict[str, Any]
    # The request that caused the message (prepaid_common.correlation): logged by consumers.
    correlation_id: str | None = None

    @classmethod
    def wrap(
        cls,
        message: Message,
        *,
        producer: str,
        correlation_id: str | None = None,
        routing_key: str | None = None,
    ) -> Envelope:
        """Wrap a message for publishing (under its own routing key unless one is given).

        The message was validated when it was built and its JSON dump is a plain dict, so
        the envelope is assembled without validating the same data a second time.
        """
        return cls.model_construct(
            message_id=str(uuid.uuid4()),
            type=message.TYPE,
            routing_key=routing_key or message.routing_key(),
            producer=producer,
            payload=message.model_dump(mode="json"),
            correlation_id=correlation_id,
        )

    def to_bytes(self) -> bytes:
        """Serialise for the wire."""
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Envelope:
        """Parse from the wire."""
        return cls.model_validate_json(raw)


M = TypeVar("M", bound=Message)


def open_envelope(envelope: Envelope, model: type[M]) -> M:
    """Validate an envelope's payload as the expected message model."""
    if envelope.type != model.TYPE:
        raise ValueError(f"expected {model.TYPE}, got {envelope.type}")
    return model.model_validate(envelope.payload)
