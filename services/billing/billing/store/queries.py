"""What billing's API reads, each in its own session: the read side of every area."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Literal

from prepaid_common.contracts import utcnow
from prepaid_common.contracts.api.billing import (
    AccountView,
    Anomaly,
    DunningItem,
    HoldView,
    Items,
    LedgerCheck,
    LedgerLine,
    LocalCreditView,
    MeterBinding,
    MeterBound,
    MeterHistoryEvent,
    Page,
    ShedView,
    Statement,
    SupplyEvent,
    TariffSummary,
    TariffView,
    UsageReport,
    Window,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from billing.domain.supply import SitePolicy
from billing.store import accounts, anomalies, ledger, meters, reference, reports, supply, tariffs


class BillingQueries:
    """Read models for the routes, by area."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessionmaker

    # --- tariffs -----------------------------------------------------------------------
    async def tariffs(self) -> Items[TariffSummary]:
        """Return every tariff."""
        async with self.sessions() as session:
            return await tariffs.tariff_list(session)

    async def tariff(self, tariff_id: str) -> TariffView:
        """Return a tariff with its versions."""
        async with self.sessions() as session:
            return await tariffs.tariff_view(session, tariff_id)

    # --- accounts ----------------------------------------------------------------------
    async def account(self, account_id: str) -> AccountView:
        """Return an account's view."""
        async with self.sessions() as session:
            return await accounts.account_view(session, account_id)

    async def accounts(
        self, *, ids: Sequence[str] | None, group: str | None, limit: int, offset: int
    ) -> Page[AccountView]:
        """Return a page of account views."""
        async with self.sessions() as session:
            return await accounts.account_page(
                session, ids=ids, group=group, limit=limit, offset=offset
            )

    async def ledger(self, account_id: str, *, limit: int, offset: int) -> Page[LedgerLine]:
        """Return a page of an account's ledger lines."""
        async with self.sessions() as session:
            await accounts.require_account(session, account_id)
            return await ledger.ledger_page(session, account_id, limit=limit, offset=offset)

    # --- meters ------------------------------------------------------------------------
    async def meter_bound(self, *, meter_id: str, account_id: str) -> MeterBound:
        """Return a binding as the bind route answers it."""
        async with self.sessions() as session:
            return await meters.meter_bound(session, meter_id=meter_id, account_id=account_id)

    async def bindings(
        self, *, meter_ids: Sequence[str] | None, account_ids: Sequence[str] | None
    ) -> Items[MeterBinding]:
        """Return meter bindings."""
        async with self.sessions() as session:
            return await meters.binding_list(session, meter_ids=meter_ids, account_ids=account_ids)

    async def meter_history(self, meter_id: str) -> Items[MeterHistoryEvent]:
        """Return a meter's history."""
        async with self.sessions() as session:
            return await meters.history_of(session, meter_id)

    async def local_credit(self, meter_id: str, *, limit: int) -> LocalCreditView:
        """Return a local-prepaid meter's credit state and purchases."""
        async with self.sessions() as session:
            return await meters.local_credit_view(session, meter_id, limit=limit)

    # --- supply ------------------------------------------------------------------------
    async def supply_events(
        self, *, meter_id: str | None, account_id: str | None, limit: int, offset: int
    ) -> Window[SupplyEvent]:
        """Return supply changes, newest first."""
        async with self.sessions() as session:
            return await supply.supply_event_window(
                session, meter_id=meter_id, account_id=account_id, limit=limit, offset=offset
            )

    async def holds(self) -> Items[HoldView]:
        """Return the holds in force now (released and expired ones are not listed)."""
        async with self.sessions() as session:
            return await supply.holds_in_force(session, utcnow())

    async def sheds(self) -> Items[ShedView]:
        """Return the latest load sheddings."""
        async with self.sessions() as session:
            return await supply.recent_sheds(session)

    async def policy(self) -> SitePolicy:
        """Return the site policy."""
        async with self.sessions() as session:
            return await reference.load_policy(session)

    # --- reports -----------------------------------------------------------------------
    async def usage(
        self,
        *,
        meter_id: str | None,
        account_id: str | None,
        start: date | None,
        end: date | None,
        granularity: Literal["day", "month"],
        current_binding: bool = False,
    ) -> UsageReport:
        """Return energy and cost by day or month (of a meter's current binding only, when
        asked: from the local day it was bound, by the account it is bound to)."""
        async with self.sessions() as session:
            if current_binding and meter_id is not None:
                binding = await meters.meter_row(session, meter_id)
                if binding is None:
                    return UsageReport(items=[], granularity=granularity)
                zone = (await reference.load_policy(session)).zone
                bound_on = binding.bound_at.astimezone(zone).date()
                return await reports.usage_report(
                    session,
                    meter_id=meter_id,
                    account_id=binding.account_id,
                    start=bound_on if start is None else max(start, bound_on),
                    end=end,
                    granularity=granularity,
                )
            return await reports.usage_report(
                session,
                meter_id=meter_id,
                account_id=account_id,
                start=start,
                end=end,
                granularity=granularity,
            )

    async def statement(self, account_id: str, *, month: str, first: date) -> Statement:
        """Return an account's monthly statement."""
        async with self.sessions() as session:
            return await reports.statement(session, account_id, month=month, first=first)

    async def dunning(self) -> Items[DunningItem]:
        """Return the accounts that owe money."""
        async with self.sessions() as session:
            return await reports.dunning_list(session)

    async def anomalies(
        self, *, meter_id: str | None, kind: str | None, limit: int, offset: int
    ) -> Window[Anomaly]:
        """Return anomalies, newest first."""
        async with self.sessions() as session:
            return await anomalies.anomaly_window(
                session, meter_id=meter_id, kind=kind, limit=limit, offset=offset
            )

    async def ledger_check(self) -> LedgerCheck:
        """Check the whole ledger at one moment."""
        async with self.sessions() as session:
            return await ledger.ledger_check(session)
