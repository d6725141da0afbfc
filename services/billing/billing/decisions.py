"""Deciding meters' supply: the domain's decision applied to an account, inside the unit of
work that changed something it depends on (balance, terms, holds, shedding)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from prepaid_common.contracts import RelayRequestedV1, SupplyDecidedV1, utcnow
from prepaid_common.contracts.messages import BalanceLowV1, CutImminentV1
from prepaid_common.outbox import UnitOfWork
from sqlalchemy.ext.asyncio import AsyncSession

from billing.domain import ledger
from billing.domain.money import ZERO
from billing.domain.supply import (
    SupplyInputs,
    crossed_warning,
    decide_supply,
    expected_supply,
    is_friendly,
    warning_settled,
)
from billing.metrics import SUPPLY_DECISIONS
from billing.store import accounts as account_store
from billing.store import meters as meter_store
from billing.store import site_office as site_store
from billing.store import supply as supply_store
from billing.store.anomalies import record_anomaly
from billing.store.balances import balance_of, balances_of
from billing.store.reference import ReferenceCache


class SupplyDecisions:
    """Decide and record every meter's supply, emitting a relay request for each change."""

    def __init__(self, reference: ReferenceCache) -> None:
        self.reference = reference

    async def evaluate_account(
        self, uow: UnitOfWork, account_id: str, *, now: datetime, batch: str | None = None
    ) -> None:
        """Decide every meter of an account; emit a relay request for each change.

        ``batch`` names the group command (a load shedding or its end) the requests belong
        to, so that control can report its progress.
        """
        session = uow.session
        account = await account_store.account_row(session, account_id)
        if account is None:
            return
        balance = await balance_of(session, account_id)
        warn = crossed_warning(
            balance=balance, warning_line=account.warning_line, warned=account.warned
        )
        if warn is not None:
            await account_store.set_warned(session, account_id, warn)
            if warn:
                await record_anomaly(
                    uow,
                    "-",
                    "low_balance",
                    f"account {account_id} balance {balance} at or below {account.warning_line}",
                )
                await uow.emit(
                    BalanceLowV1(
                        account_id=account_id,
                        level=1,
                        balance=balance,
                        line=account.warning_line,
                        at=now,
                    )
                )
        policy = await self.reference.policy(session)
        groups = await account_store.groups_of(session, account_id)
        shed_by = None
        if not account.protected and groups:
            shed_by = await supply_store.shedding_group(session, groups)
        friendly = is_friendly(policy, now)
        overdue = account.mode == "postpaid" and await _postpaid_overdue(session, account_id, now)
        cut_line = account.trip_line - account.overdraft_limit
        # The second warning level, said while a meter is still on (the notifications
        # service keeps one message per crossing); a cut account says nothing again.
        reached_cut_line = account.mode == "prepaid" and balance <= cut_line
        announced_level_2 = False
        for meter_id, current in await meter_store.supplies_of(session, account_id):
            held = await supply_store.held(session, meter_id, groups, now)
            decision = decide_supply(
                SupplyInputs(
                    mode=account.mode,
                    balance=balance,
                    trip_line=account.trip_line,
                    overdraft_limit=account.overdraft_limit,
                    current=current,
                    held=held,
                    shed_by=shed_by,
                    friendly=friendly,
                    friendly_debt_limit=account.friendly_debt_limit,
                    overdue=overdue,
                )
            )
            if reached_cut_line and current == "on" and not announced_level_2:
                announced_level_2 = True
                await uow.emit(
                    BalanceLowV1(
                        account_id=account_id, level=2, balance=balance, line=cut_line, at=now
                    )
                )
            kept_by_friendly_hours = friendly and not held and shed_by is None
            if reached_cut_line and kept_by_friendly_hours and decision.supply == current == "on":
                await uow.emit(
                    CutImminentV1(account_id=account_id, meter_id=meter_id, balance=balance, at=now)
                )
            action = decision.action_from(current)
            if action is None:
                continue
            await meter_store.set_supply(session, meter_id, decision.supply)
            await supply_store.record_supply_event(
                session,
                account_id=account_id,
                meter_id=meter_id,
                action=action,
                reason=decision.reason,
            )
            SUPPLY_DECISIONS.labels(action).inc()
            await uow.emit(
                RelayRequestedV1(
                    request_id=str(uuid.uuid4()),
                    meter_id=meter_id,
                    account_id=account_id,
                    action=action,
                    reason=decision.reason,
                    at=utcnow(),
                    batch=batch,
                )
            )

    async def announce(
        self, uow: UnitOfWork, *, meter_id: str, account_id: str, reason: str
    ) -> None:
        """Tell control a meter's decided supply although it did not change.

        A meter just bound or swapped in may stand either way (its relay left open, or
        closed on a meter replacing a cut one): control holds its relay to the decision.
        """
        row = await meter_store.meter_row(uow.session, meter_id)
        if row is None:
            return
        await uow.emit(
            SupplyDecidedV1(
                meter_id=meter_id,
                account_id=account_id,
                supply="off" if row.supply == "off" else "on",
                reason=reason,
                at=utcnow(),
            )
        )

    async def evaluate_after_readings(
        self, uow: UnitOfWork, bindings: dict[str, Any], evaluate_at: dict[str, datetime]
    ) -> None:
        """Decide supply for the accounts of a batch whose decision could change.

        Evaluating every account after every reading would give the same result: an
        account is skipped only when its warning flag already matches its balance and each
        of its meters already has the supply its balance calls for, no shedding touches it,
        and (while any hold is in force) none of its meters is off.
        """
        if not evaluate_at:
            return
        session = uow.session
        ids = sorted(evaluate_at)
        known = await balances_of(session, [ledger.tenant_ledger(a) for a in ids])
        shed = await supply_store.shed_accounts(session, ids)
        holding = await supply_store.any_hold_in_force(session, utcnow())
        by_account: dict[str, list[Any]] = {}
        for row in bindings.values():
            by_account.setdefault(row.account_id, []).append(row)
        for account_id in ids:
            rows = by_account[account_id]
            terms = rows[0]
            balance = known.get(ledger.tenant_ledger(account_id), ZERO)
            expected = expected_supply(
                mode=terms.mode,
                balance=balance,
                trip_line=terms.trip_line,
                overdraft_limit=terms.overdraft_limit,
            )
            settled = (
                warning_settled(
                    balance=balance, warning_line=terms.warning_line, warned=terms.warned
                )
                and all(row.supply == expected for row in rows)
                and account_id not in shed
                and not (holding and any(row.supply == "off" for row in rows))
            )
            if not settled:
                await self.evaluate_account(uow, account_id, now=evaluate_at[account_id])


async def _postpaid_overdue(session: AsyncSession, account_id: str, now: datetime) -> bool:
    """Whether a postpaid account's terms cut it now for an overdue bill."""
    terms = await site_store.terms_of(session, account_id)
    if terms is None or not terms.cut_when_overdue:
        return False
    return (await site_store.postpaid_standing(session, account_id, terms, now)).overdue
