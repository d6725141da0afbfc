"""Accounts: open one, change its terms and groups."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from decimal import Decimal

from prepaid_common.contracts import utcnow
from prepaid_common.contracts.api.billing import AccountChanges, AccountTerms
from prepaid_common.errors import Conflict, Invalid
from prepaid_common.outbox import ServiceStore
from sqlalchemy.exc import IntegrityError

from billing.decisions import SupplyDecisions
from billing.domain.tariffs import TariffDefinition
from billing.operations.tariffs import TariffOperations
from billing.store import accounts as account_store
from billing.store import tariffs as tariff_store


class AccountOperations:
    """Open and change accounts."""

    def __init__(
        self, *, store: ServiceStore, tariffs: TariffOperations, decisions: SupplyDecisions
    ) -> None:
        self.store = store
        self.tariffs = tariffs
        self.decisions = decisions

    async def open_account(
        self,
        *,
        account_id: str,
        name: str,
        tariff_id: str | None,
        price_per_kwh: Decimal | None,
        terms: AccountTerms,
        groups: Sequence[str],
        operator: str,
    ) -> bool:
        """Open an account; False if one with the same id already exists (same terms)."""
        if tariff_id is None:
            if price_per_kwh is None:
                raise Invalid("give tariff_id or price_per_kwh")
            tariff_id = await self._flat_tariff(price_per_kwh, operator=operator)
        async with self.store.unit_of_work() as uow:
            await tariff_store.require_tariff(uow.session, tariff_id)
            existing = await account_store.account_row(uow.session, account_id)
            if existing is not None:
                if (existing.name, existing.tariff_id) != (name, tariff_id):
                    raise Conflict(f"account {account_id} already exists with other terms")
                return False
            await account_store.insert_account(
                uow.session,
                account_id=account_id,
                name=name,
                tariff_id=tariff_id,
                terms=terms,
                now=utcnow(),
            )
            await account_store.add_groups(uow.session, account_id, groups)
        return True

    async def _flat_tariff(self, price_per_kwh: Decimal, *, operator: str) -> str:
        """Return the id of the flat tariff at this price, defining it the first time."""
        tariff_id = f"flat-{price_per_kwh.normalize():f}"
        async with self.store.sessionmaker() as session:
            known = await tariff_store.tariff_exists(session, tariff_id)
        if not known:
            # Another request may make the same flat tariff at the same moment.
            with contextlib.suppress(IntegrityError):
                await self.tariffs.define_tariff(
                    tariff_id=tariff_id,
                    name=f"Flat {price_per_kwh} yuan/kWh",
                    definition=TariffDefinition(kind="flat", price_per_kwh=price_per_kwh),
                    effective_from=None,
                    operator=operator,
                )
        return tariff_id

    async def update_account(self, *, account_id: str, changes: AccountChanges) -> None:
        """Change an account's terms or groups; supply is re-decided at once."""
        async with self.store.unit_of_work() as uow:
            await account_store.require_account(uow.session, account_id)
            if "tariff_id" in changes.model_fields_set and changes.tariff_id is not None:
                await tariff_store.require_tariff(uow.session, changes.tariff_id)
            await account_store.change_terms(uow.session, account_id, changes)
            if changes.groups is not None:
                await account_store.replace_groups(uow.session, account_id, changes.groups)
            await self.decisions.evaluate_account(uow, account_id, now=utcnow())
