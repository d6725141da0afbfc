"""Recipients' preferences, as JSON columns."""

from __future__ import annotations

import json
from datetime import datetime

from prepaid_common.contracts.api.notifications import (
    NotificationPreferences,
    NotificationPreferencesView,
)
from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from notifications.domain.kinds import Channel, Kind
from notifications.domain.preferences import Contacts, Preferences
from notifications.tables import preferences


async def stored(session: AsyncSession, account_id: str) -> NotificationPreferencesView:
    row = (
        await session.execute(select(preferences).where(preferences.c.account_id == account_id))
    ).first()
    if row is None:
        return NotificationPreferencesView(account_id=account_id, updated_at=None)
    return NotificationPreferencesView(
        account_id=account_id,
        contacts=json.loads(row.contacts),
        opted_out=row.opted_out,
        channels=json.loads(row.channels),
        updated_at=row.updated_at,
    )


async def replace(
    session: AsyncSession, account_id: str, body: NotificationPreferences, *, now: datetime
) -> None:
    await session.execute(delete(preferences).where(preferences.c.account_id == account_id))
    await session.execute(
        insert(preferences).values(
            account_id=account_id,
            contacts=body.contacts.model_dump_json(),
            opted_out=body.opted_out,
            channels=json.dumps(body.channels),
            updated_at=now,
        )
    )


def as_domain(view: NotificationPreferences) -> Preferences:
    channels: dict[Kind, tuple[Channel, ...]] = {
        Kind(kind): tuple(chosen) for kind, chosen in view.channels.items()
    }
    return Preferences(
        contacts=Contacts(
            phones=tuple(view.contacts.phones),
            emails=tuple(view.contacts.emails),
            openids=tuple(view.contacts.openids),
        ),
        opted_out=view.opted_out,
        channels=channels,
    )
