"""A bulk import's statements: what exists of the tariffs, accounts and bindings it names,
and writing the new ones set-at-a-time (one executemany per table)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.domain.tariffs import TariffDefinition
from billing.tables import (
    account_groups,
    accounts,
    meter_history,
    meters,
    tariff_versions,
    tariffs,
)

# Ids per IN (...) list: well under SQLite's limit on bound parameters.
_CHUNK = 500


def _chunks(values: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


async def current_definitions(
    session: AsyncSession, tariff_ids: Sequence[str], *, now: datetime
) -> dict[str, TariffDefinition]:
    """Return the definition in force now of each named tariff that exists (a tariff whose
    versions all lie ahead: its first)."""
    versions: dict[str, list[tuple[datetime, Any]]] = {}
    for chunk in _chunks(tariff_ids):
        rows = await session.execute(
            select(
                tariff_versions.c.tariff_id,
                tariff_versions.c.effective_from,
                tariff_versions.c.definition,
            ).where(tariff_versions.c.tariff_id.in_(chunk))
        )
        for tariff_id, effective_from, definition in rows:
            versions.setdefault(tariff_id, []).append((effective_from, definition))
    found: dict[str, TariffDefinition] = {}
    for tariff_id, listed in versions.items():
        in_force = [v for v in listed if v[0] <= now]
        _at, definition = (
            max(in_force, key=lambda v: v[0]) if in_force else min(listed, key=lambda v: v[0])
        )
        found[tariff_id] = TariffDefinition.model_validate(definition)
    return found


async def accounts_named(session: AsyncSession, account_ids: Sequence[str]) -> dict[str, Any]:
    """Return the rows (id, name, tariff_id) of the named accounts that exist."""
    found: dict[str, Any] = {}
    for chunk in _chunks(account_ids):
        rows = await session.execute(
            select(accounts.c.id, accounts.c.name, accounts.c.tariff_id).where(
                accounts.c.id.in_(chunk)
            )
        )
        found.update({row.id: row for row in rows})
    return found


async def groups_of_accounts(
    session: AsyncSession, account_ids: Sequence[str]
) -> dict[str, set[str]]:
    """Return the groups of each named account (accounts in none are left out)."""
    found: dict[str, set[str]] = {}
    for chunk in _chunks(account_ids):
        rows = await session.execute(
            select(account_groups.c.account_id, account_groups.c.group_name).where(
                account_groups.c.account_id.in_(chunk)
            )
        )
        for account_id, group in rows:
            found.setdefault(account_id, set()).add(group)
    return found


async def bound_accounts(session: AsyncSession, meter_ids: Sequence[str]) -> dict[str, str]:
    """Return the account each named meter is bound to (unbound meters are left out)."""
    found: dict[str, str] = {}
    for chunk in _chunks(meter_ids):
        rows = await session.execute(
            select(meters.c.meter_id, meters.c.account_id).where(meters.c.meter_id.in_(chunk))
        )
        found.update({row[0]: row[1] for row in rows})
    return found


async def supplies(session: AsyncSession, meter_ids: Sequence[str]) -> dict[str, str]:
    """Return the decided supply of each named bound meter."""
    found: dict[str, str] = {}
    for chunk in _chunks(meter_ids):
        rows = await session.execute(
            select(meters.c.meter_id, meters.c.supply).where(meters.c.meter_id.in_(chunk))
        )
        found.update({row[0]: row[1] for row in rows})
    return found


async def insert_all(
    session: AsyncSession,
    *,
    new_tariffs: list[dict[str, Any]],
    new_versions: list[dict[str, Any]],
    new_accounts: list[dict[str, Any]],
    new_groups: list[dict[str, Any]],
    new_bindings: list[dict[str, Any]],
    new_history: list[dict[str, Any]],
) -> None:
    """Write everything new, parents first (one executemany per table)."""
    for table, rows in (
        (tariffs, new_tariffs),
        (tariff_versions, new_versions),
        (accounts, new_accounts),
        (account_groups, new_groups),
        (meters, new_bindings),
        (meter_history, new_history),
    ):
        if rows:
            await session.execute(insert(table), rows)
