"""The record of messages and recipients' preferences."""

from __future__ import annotations

from prepaid_common.contracts import utcnow
from prepaid_common.contracts.api.notifications import (
    NotificationPage,
    NotificationPreferences,
    NotificationPreferencesView,
)
from prepaid_common.outbox import ServiceStore

from notifications.store import messages as message_store
from notifications.store import preferences as preference_store


async def notifications_page(
    store: ServiceStore,
    *,
    recipient: str | None,
    kind: str | None,
    status: str | None,
    limit: int,
    offset: int,
) -> NotificationPage:
    async with store.sessionmaker() as session:
        items = await message_store.page(
            session, recipient=recipient, kind=kind, status=status, limit=limit, offset=offset
        )
    return NotificationPage(items=items, limit=limit, offset=offset)


async def preferences_of(store: ServiceStore, account_id: str) -> NotificationPreferencesView:
    async with store.sessionmaker() as session:
        return await preference_store.stored(session, account_id)


async def set_preferences(
    store: ServiceStore, account_id: str, body: NotificationPreferences
) -> NotificationPreferencesView:
    async with store.unit_of_work() as uow:
        await preference_store.replace(uow.session, account_id, body, now=utcnow())
        return await preference_store.stored(uow.session, account_id)
