"""Notifications' HTTP models: the record of messages sent, a recipient's preferences, and
outbound webhook subscriptions with their deliveries."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, StringConstraints

NotificationKind = Literal[
    "low_balance_1",
    "low_balance_2",
    "cut_imminent",
    "supply_cut",
    "supply_restored",
    "top_up_received",
    "meter_offline",
    "dtu_offline",
    "payment_attention",
]
NotificationChannel = Literal["sms", "wechat", "email"]
WebhookEvent = Literal[
    "payment.received", "supply.cut", "supply.restored", "balance.low", "meter.offline"
]

Phone = Annotated[str, StringConstraints(pattern=r"^\+?[0-9]{6,20}$")]
Email = Annotated[str, StringConstraints(pattern=r"^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]{1,60}$")]
OpenId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{6,64}$")]


class NotificationView(BaseModel):
    """One message to one address on one channel, and what became of it."""

    id: str
    kind: NotificationKind
    recipient: str  # an account id, or "operators"
    channel: NotificationChannel
    address: str
    title: str
    text: str
    status: Literal["pending", "sent", "failed"]
    attempts: int
    not_before: datetime
    next_attempt_at: datetime
    # The provider's last answer (its request id, message id or error), as it gave it.
    provider_answer: str
    created_at: datetime
    sent_at: datetime | None


class NotificationPage(BaseModel):
    """A page of messages, newest first."""

    items: list[NotificationView]
    limit: int
    offset: int


class ContactsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phones: list[Phone] = Field(default_factory=list, max_length=5)
    emails: list[Email] = Field(default_factory=list, max_length=5)
    openids: list[OpenId] = Field(default_factory=list, max_length=5)


class NotificationPreferences(BaseModel):
    """Where an account's messages go: its contacts, the channels of each kind (a kind not
    listed goes to every channel with a contact; an empty list turns it off), opt-out."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "contacts": {"phones": ["+8613800000000"], "emails": [], "openids": []},
                    "opted_out": False,
                    "channels": {"top_up_received": ["wechat"], "low_balance_1": ["sms"]},
                }
            ]
        },
    )

    contacts: ContactsBody = Field(default_factory=ContactsBody)
    opted_out: bool = False
    channels: dict[NotificationKind, list[NotificationChannel]] = Field(default_factory=dict)


class NotificationPreferencesView(NotificationPreferences):
    account_id: str
    updated_at: datetime | None


class WebhookSubscriptionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: HttpUrl
    events: list[WebhookEvent] = Field(min_length=1, max_length=5)
    description: str = Field(default="", max_length=200)


class WebhookSubscriptionView(BaseModel):
    id: str
    url: str
    events: list[WebhookEvent]
    description: str
    active: bool
    created_at: datetime
    created_by: str


class WebhookSubscriptionCreated(WebhookSubscriptionView):
    """The new subscription and its signing secret: shown this once, never again."""

    secret: str


class WebhookSubscriptionList(BaseModel):
    items: list[WebhookSubscriptionView]


class WebhookDeliveryView(BaseModel):
    """One event sent (or to send) to one subscription."""

    id: str
    subscription_id: str
    event_id: str
    event_type: WebhookEvent
    body: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    next_attempt_at: datetime
    response_status: int | None
    last_error: str
    created_at: datetime
    delivered_at: datetime | None


class WebhookDeliveryPage(BaseModel):
    items: list[WebhookDeliveryView]
    limit: int
    offset: int


class NotificationChannelState(BaseModel):
    channel: NotificationChannel
    provider: str
    enabled: bool
