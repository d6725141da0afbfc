"""The public REST API, version 1: one router per area, each thin (authorise, call the
owning service or the gateway's operations, answer with a typed model)."""

from __future__ import annotations

from fastapi import APIRouter

from gateway.api import (
    accounts,
    admin,
    api_keys,
    auth,
    dead_letters,
    field,
    imports,
    meters,
    money,
    orders,
    relays,
    reports,
    site_office,
    supply,
    tariffs,
    webhooks,
)

PREFIX = "/api/v1"

# Every area's router; an area added later is one more line here.
ROUTERS: tuple[APIRouter, ...] = (
    auth.router,
    meters.router,
    field.router,
    accounts.router,
    money.router,
    reports.router,
    tariffs.router,
    supply.router,
    relays.router,
    admin.router,
    api_keys.router,
    dead_letters.router,
    orders.router,
    webhooks.router,
    imports.router,
    site_office.router,
)
