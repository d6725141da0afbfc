"""The gateway's tables: users, their accounts, the audit log."""

from __future__ import annotations

from prepaid_common.db import UtcDateTime
from prepaid_common.service import service_metadata
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
    false,
    text,
)

metadata, plumbing = service_metadata("gateway")

users = Table(
    "gateway_users",
    metadata,
    Column("username", String(64), primary_key=True),
    Column("password_hash", String(200), nullable=False),
    Column("role", String(16), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    # Tokens carry the version they were signed at: moving it on (logout, a new password,
    # disabling) revokes every token the user holds.
    Column("token_version", Integer, nullable=False, server_default=text("0")),
    Column("disabled", Boolean, nullable=False, server_default=false()),
)

user_accounts = Table(
    "gateway_user_accounts",
    metadata,
    Column("username", String(64), ForeignKey("gateway_users.username"), primary_key=True),
    Column("account_id", String(64), primary_key=True),
)

audit = Table(
    "gateway_audit",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("at", UtcDateTime(), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(200), nullable=False),
    Column("detail", JSON, nullable=False),
)

api_keys = Table(
    "gateway_api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(64), nullable=False),
    # sha256 of the key: the key itself is shown once and never stored.
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("scopes", JSON, nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("last_used_at", UtcDateTime(), nullable=True),
    Column("revoked_at", UtcDateTime(), nullable=True),
)

idempotency = Table(
    "gateway_idempotency",
    metadata,
    Column("principal", String(80), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("status", Integer, nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False, index=True),
)
