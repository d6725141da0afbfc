"""Supply: hold power (保电), shed a group's load, set the site policy."""

from __future__ import annotations

import uuid
from datetime import datetime

from prepaid_common.contracts import utcnow
from prepaid_common.errors import Invalid, NotFound
from prepaid_common.outbox import ServiceStore, UnitOfWork

from billing.decisions import SupplyDecisions
from billing.domain.supply import SitePolicy
from billing.store import supply as supply_store
from billing.store.reference import ReferenceCache, save_policy


class SupplyOperations:
    """Holds, load shedding and the site policy; supply is re-decided where they apply."""

    def __init__(
        self, *, store: ServiceStore, reference: ReferenceCache, decisions: SupplyDecisions
    ) -> None:
        self.store = store
        self.reference = reference
        self.decisions = decisions

    async def place_hold(
        self, *, scope: str, target: str, until: datetime | None, reason: str, operator: str
    ) -> str:
        """Hold power (保电) for a meter, a group or everyone until released or expired.

        A hold that would end before it starts (``until`` not in the future) is Invalid, and
        one for a group no account is in is NotFound (a typo would otherwise hold nothing,
        silently). A meter's existence is the collector's to say (the gateway asks it).
        """
        if until is not None and until.tzinfo is None:
            raise Invalid("until needs a time zone (e.g. 2026-12-01T18:00:00+08:00)")
        if until is not None and until <= utcnow():
            raise Invalid(f"the hold would end at {until.isoformat()}, which has passed")
        hold_id = str(uuid.uuid4())
        async with self.store.unit_of_work() as uow:
            if scope == "group":
                await _require_group(uow, target)
            await supply_store.insert_hold(
                uow.session,
                hold_id=hold_id,
                scope=scope,
                target=target if scope != "global" else "*",
                until=until,
                reason=reason,
                operator=operator,
            )
            await self._reevaluate(uow, scope, target)
        return hold_id

    async def release_hold(self, *, hold_id: str) -> None:
        """Release a hold; supply is re-decided where it applied."""
        async with self.store.unit_of_work() as uow:
            row = await supply_store.release_hold(uow.session, hold_id)
            await self._reevaluate(uow, row.scope, row.target)

    async def start_shed(self, *, group: str, reason: str, operator: str) -> str:
        """Cut a whole group (building, floor, tenant class), sparing protected accounts.

        A group no account is in is NotFound: shedding it would cut nothing."""
        shed_id = str(uuid.uuid4())
        async with self.store.unit_of_work() as uow:
            await _require_group(uow, group)
            await supply_store.insert_shed(
                uow.session, shed_id=shed_id, group=group, reason=reason, operator=operator
            )
            await self._reevaluate(uow, "group", group, batch=f"shed:{shed_id}")
        return shed_id

    async def end_shed(self, *, shed_id: str) -> None:
        """End a group's load shedding; its accounts' supply is re-decided."""
        async with self.store.unit_of_work() as uow:
            row = await supply_store.end_shed(uow.session, shed_id)
            await self._reevaluate(uow, "group", row.group_name, batch=f"shed:{shed_id}:end")

    async def set_policy(self, *, policy: SitePolicy) -> None:
        """Set the site's time zone and friendly hours."""
        async with self.store.unit_of_work() as uow:
            await save_policy(uow, policy)
        self.reference.clear()

    async def _reevaluate(
        self, uow: UnitOfWork, scope: str, target: str, *, batch: str | None = None
    ) -> None:
        for account_id in await supply_store.accounts_in_scope(uow.session, scope, target):
            await self.decisions.evaluate_account(uow, account_id, now=utcnow(), batch=batch)


async def _require_group(uow: UnitOfWork, group: str) -> None:
    if not await supply_store.group_exists(uow.session, group):
        raise NotFound(f"no account is in group {group}")
