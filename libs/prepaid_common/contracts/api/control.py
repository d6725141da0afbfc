"""The control service's HTTP API: an operator's relay command and the command log."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, Field

from prepaid_common.contracts.identifiers import Identifier
from prepaid_common.contracts.messages import CommandAction

OperatorAction = Literal["trip", "close"]


class CommandBody(BaseModel):
    """What an operator asks of a meter's relay on the public API."""

    action: OperatorAction
    reason: str = Field(default="operator command", max_length=400)


class OperatorCommand(BaseModel):
    """A relay command an operator gives, as the gateway passes it to control."""

    meter_id: Identifier
    action: OperatorAction
    operator: str = Field(min_length=1, max_length=64)
    reason: str = Field(default="operator command", max_length=400)


class CommandView(BaseModel):
    """A command (relay switch or purchase) and where it stands."""

    id: str
    meter_id: str
    action: CommandAction
    # A purchase's amount (yuan) and count; null for relay commands.
    amount: Decimal | None = None
    purchase_count: int | None = None
    origin: str
    reason: str
    status: str
    attempts: int
    error: str
    created_at: datetime
    expires_at: datetime
    updated_at: datetime


class CommandPage(BaseModel):
    """A page of commands, newest first."""

    items: list[CommandView]
    limit: int
    offset: int
