"""The gateway's public HTTP API: its own models (sign-in, users, the audit log, a body it
turns into a call on billing, the meter view it assembles from two services).

What the gateway passes through unchanged is typed by the owning service's module
(``contracts.api.collector``, ``control``, ``payments``, ``billing``), so a public answer
has exactly the fields the service gave.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from prepaid_common.contracts.api.collector import MeterView
from prepaid_common.contracts.identifiers import Identifier

Role = Literal["admin", "operator", "tenant"]
ROLES: tuple[Role, ...] = ("admin", "operator", "tenant")


# --- sign-in and users -----------------------------------------------------------------
class Token(BaseModel):
    """A bearer token and how many seconds it lasts."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"access_token": "eyJhbGciOi...", "token_type": "bearer", "expires_in": 3600}
            ]
        }
    )

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


class Me(BaseModel):
    """Who a token belongs to, and for a tenant the accounts it may see."""

    username: str
    role: Role
    account_ids: list[str]


class UserBody(BaseModel):
    """A user to create; a tenant sees only ``account_ids``."""

    username: Identifier
    password: str = Field(min_length=8, max_length=200)
    role: Role
    account_ids: list[Identifier] = Field(default_factory=list)


class UserView(BaseModel):
    """A user as created (never the password)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"username": "tenant12", "role": "tenant", "account_ids": ["shop:12"]}]
        }
    )

    username: str
    role: Role
    account_ids: list[str]


class UserState(UserView):
    """A user as an admin sees it in the list: with whether it may sign in."""

    disabled: bool


class UserPage(BaseModel):
    """A page of users, by name."""

    items: list[UserState]
    total: int
    limit: int
    offset: int


class UserChanges(BaseModel):
    """What an admin changes on a user: disabling it revokes its tokens at once."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"disabled": True}]})

    disabled: bool


class NewPassword(BaseModel):
    """A password an admin gives a user."""

    password: str = Field(min_length=8, max_length=200)


class PasswordChange(BaseModel):
    """A user's new password, with the current one (every token of the user is revoked)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"current_password": "the old one", "new_password": "a long new passphrase"}
            ]
        }
    )

    current_password: str = Field(max_length=200)
    new_password: str = Field(min_length=8, max_length=200)


# --- the audit log ---------------------------------------------------------------------
class AuditEntry(BaseModel):
    """One operator action: who, what, on what, with which details."""

    id: int
    at: datetime
    actor: str
    action: str
    target: str
    detail: dict[str, Any]


class AuditPage(BaseModel):
    """A page of the audit log, newest first."""

    items: list[AuditEntry]
    total: int
    limit: int
    offset: int


# --- meters as the public sees them ----------------------------------------------------
class PowerLimitState(BaseModel):
    """A meter's power limit (kW): the one last asked for, and the one the meter reports."""

    # The newest power_limit command's limit, when it was asked and where it stands
    # (sent, succeeded, failed, expired); null before any was asked.
    asked_kw: Decimal | None
    asked_at: datetime | None
    command_id: str | None
    status: str | None
    # Read back from the meter with its last reading (null: no limit set, or not yet read).
    reported_kw: Decimal | None


class PublicMeter(MeterView):
    """A meter from the collector with the account billing has it bound to (null: none)."""

    account_id: str | None
    # One meter's view (GET /meters/{id}) of a model with a power limit; null otherwise.
    power_limit: PowerLimitState | None = None


class PublicMeterPage(BaseModel):
    """A page of meters, ordered by id, and how many the caller may see in all."""

    items: list[PublicMeter]
    total: int
    limit: int
    offset: int


class BindingBody(BaseModel):
    """A meter to bind to an account (the account is in the path)."""

    meter_id: Identifier
    multiplier: Decimal = Field(default=Decimal(1), gt=0, max_digits=12, decimal_places=4)
    tariff_id: Identifier | None = None
    local_prepaid: StrictBool | None = Field(
        default=None,
        description="The meter keeps its own credit: top-ups are pushed to it as purchases",
    )
    local_price: Decimal | None = Field(
        default=None,
        ge=0,
        max_digits=10,
        decimal_places=4,
        description="Yuan per kWh the meter debits its own credit by",
    )


# --- API keys for programs -------------------------------------------------------------
Scope = Literal["read", "operate", "money"]


class ApiKeyBody(BaseModel):
    """An API key to create: a name for people, and what the program may do."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"name": "billing-export", "scopes": ["read"]}]}
    )

    name: Identifier
    scopes: list[Scope] = Field(
        min_length=1,
        max_length=3,
        description="read: every GET; operate: other writes; money: top-ups, refunds, orders",
    )


class ApiKeyView(BaseModel):
    """An API key as listed (never the key)."""

    id: str
    name: str
    scopes: list[Scope]
    created_by: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyView):
    """A new API key: ``key`` is shown this once (only its hash is kept)."""

    key: str = Field(
        description="Send as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
        examples=["pk_3f2a9c1d_kGq...Zt"],
    )


class ApiKeyList(BaseModel):
    """Every API key, newest first."""

    items: list[ApiKeyView]
