"""The site office's use cases: tenant profiles, move-out (销户) and transfer (过户), the
cashier's shift close (收费员日结), receipts (收据), postpaid terms and bills, common-area
apportionment (公摊).

Move-out and transfer are each one unit of work: final readings charged, credit settled,
meters released or handed over, the account closed. Their operation key replays the first
answer; another move of a closed account is a conflict.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from prepaid_common.contracts import SupplyDecidedV1, utcnow
from prepaid_common.contracts.api.billing import AccountTerms
from prepaid_common.contracts.api.receipts import PaymentReceipt, ReceiptRequest
from prepaid_common.contracts.api.site_office import (
    AccountClosed,
    ApportionmentRule,
    ApportionmentRuleBody,
    ApportionmentRun,
    ApportionmentShare,
    FinalCharge,
    MoveOutBody,
    PostpaidBill,
    PostpaidTerms,
    ShiftView,
    TenantProfile,
    TransferBody,
)
from prepaid_common.errors import Conflict, Invalid, NotFound
from prepaid_common.outbox import ServiceStore, UnitOfWork
from sqlalchemy.ext.asyncio import AsyncSession

from billing.decisions import SupplyDecisions
from billing.domain import ledger, lifecycle, postpaid, receipts
from billing.domain.apportionment import share_transaction, split_by_weight
from billing.domain.meter_swap import TRUSTED_MAX_POWER_KW, final_reading
from billing.domain.money import ZERO
from billing.domain.rating import (
    MeterReading,
    Position,
    position_from_json,
    position_to_json,
    rate_reading,
)
from billing.store import accounts as account_store
from billing.store import ledger as ledger_store
from billing.store import locks
from billing.store import meters as meter_store
from billing.store import receipts as receipt_store
from billing.store import site_office as site_store
from billing.store import tariffs as tariff_store
from billing.store.balances import balance_of
from billing.store.reference import load_policy, load_tariff_versions


class SiteOfficeOperations:
    """What the front desk does with accounts, cash and common areas."""

    def __init__(
        self, *, store: ServiceStore, decisions: SupplyDecisions, site_name: str = ""
    ) -> None:
        self.store = store
        self.decisions = decisions
        # Printed at the head of receipts; empty: not configured.
        self.site_name = site_name

    # --- profiles ---------------------------------------------------------------------
    async def set_profile(self, *, account_id: str, profile: TenantProfile) -> TenantProfile:
        async with self.store.unit_of_work() as uow:
            await account_store.require_account(uow.session, account_id)
            await site_store.save_profile(uow.session, account_id, profile)
        return profile

    # --- receipts ---------------------------------------------------------------------
    async def receipt(self, *, payment: ReceiptRequest) -> PaymentReceipt:
        """The receipt of a payment (收据): the account and premises, the amount in capitals,
        and what the ledger posted for it (the balance after, a reversal)."""
        async with self.store.sessionmaker() as session:
            account = await account_store.require_account(session, payment.account_id)
            profile = await site_store.profile_of(session, payment.account_id)
            posting = await receipt_store.top_up_posting(session, payment.id)
            policy = await load_policy(session)
        return receipts.compose_receipt(
            payment,
            account_name=account.name,
            profile=profile,
            posting=posting,
            zone=policy.zone,
            site_name=self.site_name,
        )

    # --- move-out and transfer ----------------------------------------------------------
    async def move_out(self, *, account_id: str, body: MoveOutBody) -> AccountClosed:
        """Close an account: final readings charged, credit refunded or kept, meters released
        (cut: nobody pays for a vacant unit) and ready for the next tenant."""
        async with self.store.unit_of_work() as uow:
            # Locked before anything is read: a refund or top-up racing the closure waits.
            await locks.lock_account(uow.session, account_id)
            replay = await self._replay(uow, account_id, body.key, "move_out")
            if replay is not None:
                return replay
            now = utcnow()
            charges = await self._final_charges(uow, account_id, body.final_readings, body.key)
            balance = await balance_of(uow.session, account_id)
            refunded = ZERO
            if body.settlement == "refund" and balance > 0:
                refunded = await self._refund(
                    uow, account_id, balance, body.method, body.key, body.operator, "move-out"
                )
            released = await self._release_meters(uow, account_id, body.operator, now, "moved out")
            result = AccountClosed(
                account_id=account_id,
                kind="move_out",
                final_charges=charges,
                refunded=refunded,
                carried=ZERO,
                balance_after=await balance_of(uow.session, account_id),
                meters_released=released,
                successor=None,
                closed_at=now,
                operator=body.operator,
            )
            await site_store.insert_closure(uow.session, key=body.key, result=result)
        return result

    async def transfer(self, *, account_id: str, body: TransferBody) -> AccountClosed:
        """Hand the premises to a new tenant: the old account settled and closed, a new one
        opened on the same terms with the meters, each starting from its final reading."""
        new = body.new_account
        async with self.store.unit_of_work() as uow:
            # Locked before anything is read: a refund or top-up racing the closure waits.
            await locks.lock_account(uow.session, account_id)
            replay = await self._replay(uow, account_id, body.key, "transfer")
            if replay is not None:
                return replay
            session = uow.session
            old = await account_store.require_account(session, account_id)
            if await account_store.account_row(session, new.id) is not None:
                raise Conflict(f"account {new.id} already exists")
            tariff_id = new.tariff_id or old.tariff_id
            await tariff_store.require_tariff(session, tariff_id)
            now = utcnow()
            charges = await self._final_charges(uow, account_id, body.final_readings, body.key)
            await account_store.insert_account(
                session,
                account_id=new.id,
                name=new.name,
                tariff_id=tariff_id,
                terms=_terms_of(old),
                now=now,
            )
            await account_store.add_groups(
                session, new.id, sorted(await account_store.groups_of(session, account_id))
            )
            await site_store.save_profile(session, new.id, new.profile)
            balance = await balance_of(session, account_id)
            refunded = carried = ZERO
            if balance > 0 and body.balance == "carry":
                # Credit goes with the premises when the parties agree; debt never does.
                carried = balance
                await self._post(
                    uow,
                    lifecycle.carried_balance(
                        from_account=account_id,
                        to_account=new.id,
                        amount=balance,
                        key=body.key,
                        operator=body.operator,
                    ),
                )
            elif balance > 0:
                refunded = await self._refund(
                    uow, account_id, balance, body.method, body.key, body.operator, "transfer"
                )
            moved = await self._hand_over(uow, account_id, new.id, tariff_id, body.operator, now)
            await self.decisions.evaluate_account(uow, new.id, now=now)
            for meter_id in moved:
                await self.decisions.announce(
                    uow,
                    meter_id=meter_id,
                    account_id=new.id,
                    reason=f"transferred from {account_id}",
                )
            result = AccountClosed(
                account_id=account_id,
                kind="transfer",
                final_charges=charges,
                refunded=refunded,
                carried=carried,
                balance_after=await balance_of(session, account_id),
                meters_released=moved,
                successor=new.id,
                closed_at=now,
                operator=body.operator,
            )
            await site_store.insert_closure(session, key=body.key, result=result)
        return result

    async def _replay(
        self, uow: UnitOfWork, account_id: str, key: str, kind: str
    ) -> AccountClosed | None:
        """The first answer for a repeated key; Conflict for a key or account used otherwise."""
        session = uow.session
        await account_store.require_account(session, account_id)
        by_key = await site_store.closure_by_key(session, key)
        if by_key is not None:
            if by_key.account_id != account_id or by_key.kind != kind:
                raise Conflict(f"operation key {key} was used for another closure")
            return AccountClosed.model_validate(by_key.result)
        if await site_store.is_closed(session, account_id):
            raise Conflict(f"account {account_id} is closed already")
        return None

    async def _final_charges(
        self, uow: UnitOfWork, account_id: str, finals: dict[str, Decimal], key: str
    ) -> list[FinalCharge]:
        """Charge each meter of the account up to its final register (the last reading when
        none is given); an operator's final reading is trusted like a swap's."""
        session = uow.session
        bound = [meter_id for meter_id, _ in await meter_store.supplies_of(session, account_id)]
        lifecycle.ensure_final_readings_known(finals, bound)
        policy = await load_policy(session)
        charges = []
        for meter_id in bound:
            row = await meter_store.meter_row(session, meter_id)
            assert row is not None
            position = position_from_json(row.position)
            last = position.last
            given = finals.get(meter_id)
            if last is None:
                charges.append(FinalCharge(meter_id=meter_id, final_kwh=given or ZERO, charge=ZERO))
                continue
            final_kwh = last.total_kwh if given is None else given
            reading = final_reading(position, final_kwh=final_kwh, now=utcnow())
            tariff_id = (
                row.tariff_id
                or (await account_store.require_account(session, account_id)).tariff_id
            )
            rating = rate_reading(
                position,
                reading,
                versions=await load_tariff_versions(session, tariff_id),
                zone=policy.zone,
                multiplier=row.multiplier,
                max_power_kw=TRUSTED_MAX_POWER_KW,
            )
            if rating.charge != 0:
                await self._post(
                    uow,
                    ledger.consumption_charge(
                        account_id=account_id,
                        meter_id=meter_id,
                        amount=rating.charge,
                        position_key=f"{final_kwh}@closing:{key}",
                    ),
                )
            await site_store.save_position(session, meter_id, position_to_json(rating.position))
            charges.append(
                FinalCharge(meter_id=meter_id, final_kwh=final_kwh, charge=rating.charge)
            )
        return charges

    async def _refund(
        self,
        uow: UnitOfWork,
        account_id: str,
        amount: Decimal,
        method: str,
        key: str,
        operator: str,
        why: str,
    ) -> Decimal:
        await self._post(
            uow,
            ledger.refund(
                account_id=account_id,
                amount=amount,
                method=method,
                key=f"{why}:{key}",
                reason=f"{why}: credit paid back",
                operator=operator,
            ),
        )
        return amount

    async def _post(self, uow: UnitOfWork, txn: ledger.Transaction) -> None:
        if await ledger_store.post(uow, txn, announce=True) is None:
            raise Conflict(f"operation {txn.operation_key} was already posted")

    async def _release_meters(
        self, uow: UnitOfWork, account_id: str, operator: str, now: datetime, why: str
    ) -> list[str]:
        """Unbind every meter of the account and hold it off until a new tenant binds it."""
        session = uow.session
        released = []
        for meter_id, _ in await meter_store.supplies_of(session, account_id):
            row = await meter_store.meter_row(session, meter_id)
            assert row is not None
            last = position_from_json(row.position).last
            await meter_store.delete_binding(session, meter_id)
            await meter_store.add_history(
                session,
                meter_id=meter_id,
                account_id=account_id,
                event="unbound",
                final_kwh=None if last is None else last.total_kwh,
                detail=why,
                operator=operator,
                at=now,
            )
            await uow.emit(
                SupplyDecidedV1(
                    meter_id=meter_id,
                    account_id=account_id,
                    supply="off",
                    reason=f"{why}: vacant",
                    at=now,
                )
            )
            released.append(meter_id)
        return released

    async def _hand_over(
        self,
        uow: UnitOfWork,
        old_id: str,
        new_id: str,
        tariff_id: str,
        operator: str,
        now: datetime,
    ) -> list[str]:
        """Bind the old account's meters to the new one, each starting afresh (a new cycle,
        no tiers carried) from the final reading the old tenant was charged to."""
        session = uow.session
        versions = await load_tariff_versions(session, tariff_id)
        zone = (await load_policy(session)).zone
        moved = []
        for meter_id, supply in await meter_store.supplies_of(session, old_id):
            row = await meter_store.meter_row(session, meter_id)
            assert row is not None
            last = position_from_json(row.position).last
            start = None
            if last is not None:
                opened = rate_reading(
                    Position(), MeterReading(now, last.total_kwh), versions=versions, zone=zone
                )
                start = position_to_json(opened.position)
            await meter_store.delete_binding(session, meter_id)
            await meter_store.insert_binding(
                session,
                meter_id=meter_id,
                account_id=new_id,
                tariff_id=None if row.tariff_id == tariff_id else row.tariff_id,
                multiplier=row.multiplier,
                position=start,
                supply=supply,
                now=now,
            )
            for account_id, event in ((old_id, "unbound"), (new_id, "bound")):
                await meter_store.add_history(
                    session,
                    meter_id=meter_id,
                    account_id=account_id,
                    event=event,
                    final_kwh=None if last is None else last.total_kwh,
                    detail=f"transfer {old_id} -> {new_id}",
                    operator=operator,
                    at=now,
                )
            moved.append(meter_id)
        return moved

    # --- cashier shifts ------------------------------------------------------------------
    async def shift_figures(self, *, cashier: str) -> ShiftView:
        """The cashier's open shift: the cash the ledger says they took since their last close."""
        async with self.store.sessionmaker() as session:
            return await _open_shift(session, cashier, utcnow())

    async def close_shift(self, *, cashier: str, counted_cash: Decimal, note: str) -> ShiftView:
        async with self.store.unit_of_work() as uow:
            now = utcnow()
            shift = await _open_shift(uow.session, cashier, now)
            closed = shift.model_copy(
                update={
                    "closed_at": now,
                    "counted_cash": counted_cash,
                    "difference": counted_cash - shift.expected_cash,
                    "note": note,
                }
            )
            shift_id = await site_store.insert_shift(uow.session, closed)
        return closed.model_copy(update={"id": shift_id})

    # --- postpaid ------------------------------------------------------------------------
    async def set_postpaid_terms(self, *, account_id: str, terms: PostpaidTerms) -> PostpaidTerms:
        async with self.store.unit_of_work() as uow:
            account = await account_store.require_account(uow.session, account_id)
            if account.mode != "postpaid":
                raise Invalid(f"account {account_id} is prepaid: postpaid terms do not apply")
            await site_store.save_terms(uow.session, account_id, terms)
            await self.decisions.evaluate_account(uow, account_id, now=utcnow())
        return terms

    async def postpaid_bill(self, *, account_id: str, now: datetime | None = None) -> PostpaidBill:
        async with self.store.sessionmaker() as session:
            account = await account_store.require_account(session, account_id)
            terms = await site_store.terms_of(session, account_id)
            if account.mode != "postpaid" or terms is None:
                raise NotFound(f"account {account_id} has no postpaid terms")
            return await site_store.postpaid_standing(session, account_id, terms, now or utcnow())

    async def post_late_fees(self, uow: UnitOfWork, account_id: str, now: datetime) -> None:
        """The calendar's part: post each day's late fee an overdue bill owes."""
        session = uow.session
        terms = await site_store.terms_of(session, account_id)
        if terms is None or terms.late_fee_rate == 0:
            return
        account = await account_store.require_account(session, account_id)
        if account.mode != "postpaid":
            return
        bill = await site_store.postpaid_standing(session, account_id, terms, now)
        if not bill.overdue:
            return
        today = now.astimezone((await load_policy(session)).zone).date()
        for day in postpaid.late_fee_days(due_on=bill.due_on, today=today):
            fee = postpaid.late_fee(account_id=account_id, day=day, owed=bill.unpaid, terms=terms)
            if fee is not None:
                await ledger_store.post(uow, fee, announce=True)

    # --- apportionment ----------------------------------------------------------------------
    async def define_rule(self, *, body: ApportionmentRuleBody) -> ApportionmentRule:
        async with self.store.unit_of_work() as uow:
            session = uow.session
            for account_id in (body.common_account_id, *body.members):
                await account_store.require_account(session, account_id)
            existing = await site_store.rule(session, body.id)
            for other in await site_store.rules(session):
                if other.id != body.id and other.common_account_id == body.common_account_id:
                    # Two rules on one common account would share the same cost twice.
                    raise Conflict(
                        f"common account {body.common_account_id} is shared by rule {other.id}"
                    )
            saved = ApportionmentRule(
                id=body.id,
                name=body.name,
                common_account_id=body.common_account_id,
                method=body.method,
                members=body.members,
                created_by=body.operator,
                created_at=existing.created_at if existing else utcnow(),
            )
            await site_store.save_rule(session, saved)
        return saved

    async def run_rule(self, *, rule_id: str, month: str, operator: str) -> ApportionmentRun:
        """Share the common account's energy cost for a month; once per rule and month."""
        async with self.store.unit_of_work() as uow:
            session = uow.session
            rule = await site_store.rule(session, rule_id)
            if rule is None:
                raise NotFound(f"apportionment rule {rule_id} does not exist")
            done = await site_store.run_of(session, rule_id, month)
            if done is not None:
                return done
            if month >= utcnow().astimezone((await load_policy(session)).zone).strftime("%Y-%m"):
                raise Invalid(f"month {month} has not ended: its common cost is not known yet")
            total = await site_store.month_cost(session, rule.common_account_id, month)
            if rule.method == "area":
                weights = await site_store.areas(session, rule.members)
            else:
                weights = await site_store.month_energy(session, rule.members, month)
            shares = (
                split_by_weight(total, [(m, weights[m]) for m in rule.members]) if total > 0 else []
            )
            for share in shares:
                if share.amount > 0:
                    await self._post(
                        uow,
                        share_transaction(
                            rule_id=rule_id,
                            month=month,
                            common_account_id=rule.common_account_id,
                            share=share,
                            total=total,
                            method=rule.method,
                        ),
                    )
            run = ApportionmentRun(
                rule_id=rule_id,
                month=month,
                total=total,
                method=rule.method,
                shares=[
                    ApportionmentShare(account_id=s.account_id, weight=s.weight, amount=s.amount)
                    for s in shares
                ],
                posted_at=utcnow(),
                operator=operator,
            )
            await site_store.insert_run(session, run)
            for share in shares:
                await self.decisions.evaluate_account(uow, share.account_id, now=run.posted_at)
        return run


async def _open_shift(session: AsyncSession, cashier: str, now: datetime) -> ShiftView:
    opened = await site_store.last_close(session, cashier)
    top_ups, cash_in, refunds, cash_out = await site_store.cash_since(
        session, cashier, since=opened, until=now
    )
    return ShiftView(
        id=None,
        cashier=cashier,
        opened_at=opened,
        closed_at=None,
        top_ups=top_ups,
        cash_in=cash_in,
        refunds=refunds,
        cash_out=cash_out,
        expected_cash=cash_in - cash_out,
        counted_cash=None,
        difference=None,
        note="",
    )


def _terms_of(row: object) -> AccountTerms:
    """The terms of an account row, for the account that takes over its premises."""
    fields = AccountTerms.model_fields
    return AccountTerms(**{name: getattr(row, name) for name in fields if hasattr(row, name)})
