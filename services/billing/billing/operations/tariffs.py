"""Tariffs: define one, or schedule a new version of it."""

from __future__ import annotations

import uuid
from datetime import datetime

from prepaid_common.contracts import utcnow
from prepaid_common.outbox import ServiceStore

from billing.domain.tariffs import TariffDefinition, version_effective_from
from billing.store import tariffs as tariff_store
from billing.store.reference import ReferenceCache


class TariffOperations:
    """Define tariffs and their versions."""

    def __init__(self, *, store: ServiceStore, reference: ReferenceCache) -> None:
        self.store = store
        self.reference = reference

    async def define_tariff(
        self,
        *,
        tariff_id: str,
        name: str,
        definition: TariffDefinition,
        effective_from: datetime | None,
        operator: str,
    ) -> str:
        """Create a tariff, or schedule a new version of it; return the version id."""
        now = utcnow()
        async with self.store.unit_of_work() as uow:
            exists = await tariff_store.tariff_exists(uow.session, tariff_id)
            effective = version_effective_from(
                tariff_exists=exists, requested=effective_from, now=now
            )
            if not exists:
                await tariff_store.insert_tariff(
                    uow.session, tariff_id=tariff_id, name=name, now=now
                )
            version_id = str(uuid.uuid4())
            await tariff_store.insert_version(
                uow.session,
                version_id=version_id,
                tariff_id=tariff_id,
                effective_from=effective,
                definition=definition,
                operator=operator,
                now=now,
            )
        self.reference.clear()
        return version_id
