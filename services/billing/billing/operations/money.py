"""Money: what an operator moves (arrears, refunds, reversals; audited and keyed) and the
check of a top-up against the balance cap before money is taken."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from prepaid_common.contracts import utcnow
from prepaid_common.errors import Conflict, NotFound
from prepaid_common.outbox import ServiceStore

from billing.decisions import SupplyDecisions
from billing.domain import ledger
from billing.domain.accounts import ensure_top_up_fits
from billing.store import accounts as account_store
from billing.store import ledger as ledger_store
from billing.store import locks, top_up_holds
from billing.store import site_office as site_store
from billing.store.balances import balance_of

# How long headroom stays held for cash let through but not (yet) recorded by payments.
TOP_UP_HOLD = timedelta(minutes=10)


class MoneyOperations:
    """Post operators' transactions; supply is re-decided after each."""

    def __init__(self, *, store: ServiceStore, decisions: SupplyDecisions) -> None:
        self.store = store
        self.decisions = decisions

    async def record_arrears(
        self, *, account_id: str, amount: Decimal, key: str, reason: str, operator: str
    ) -> str:
        """Record old debt an account owes; return the transaction id."""
        return await self.post_operator_transaction(
            ledger.record_arrears(
                account_id=account_id, amount=amount, key=key, reason=reason, operator=operator
            )
        )

    async def refund(
        self,
        *,
        account_id: str,
        amount: Decimal,
        method: str,
        key: str,
        reason: str,
        operator: str,
    ) -> str:
        """Pay credit back to a tenant (退费), never more than the balance; return the id."""
        return await self.post_operator_transaction(
            ledger.refund(
                account_id=account_id,
                amount=amount,
                method=method,
                key=key,
                reason=reason,
                operator=operator,
            )
        )

    async def post_operator_transaction(self, txn: ledger.Transaction) -> str:
        """Post an audited operator transaction (arrears, refund); return its id.

        The same operation key again with the same account, kind and amounts is a replay:
        the first transaction's id is answered and nothing is posted twice. The key used
        for anything else is a Conflict.
        """
        async with self.store.unit_of_work() as uow:
            # Locked before the balance is read: two refunds cannot both see the same credit.
            await locks.lock_account(uow.session, txn.account_id)
            await account_store.require_account(uow.session, txn.account_id)
            earlier = await ledger_store.transaction_id_by_key(uow.session, txn.operation_key)
            if earlier is not None:
                first = await ledger_store.load_transaction(uow.session, earlier)
                if first is None or not ledger.same_posting(first, txn):
                    raise Conflict(f"operation {txn.operation_key} was posted with other terms")
                return earlier
            if txn.kind == "refund":
                ledger.ensure_refund_covered(
                    txn, balance=await balance_of(uow.session, txn.account_id)
                )
            txn_id = await ledger_store.post(uow, txn, announce=True)
            if txn_id is None:
                raise Conflict(f"operation {txn.operation_key} was already posted")
            await self.decisions.evaluate_account(uow, txn.account_id, now=utcnow())
        return txn_id

    async def reverse(self, *, transaction_id: str, reason: str, operator: str) -> str:
        """Post the mirror image of a transaction (冲正); a transaction is reversed once."""
        async with self.store.unit_of_work() as uow:
            original = await ledger_store.load_transaction(uow.session, transaction_id)
            if original is None:
                raise NotFound(f"transaction {transaction_id} does not exist")
            ledger.ensure_reversible(original.kind)
            # Locked before the key and the balance are read: one reversal, fully covered.
            await locks.lock_account(uow.session, original.account_id)
            mirror = ledger.reversal(
                original, original_id=transaction_id, reason=reason, operator=operator
            )
            if await ledger_store.transaction_id_by_key(uow.session, mirror.operation_key):
                raise Conflict(f"transaction {transaction_id} was already reversed")
            ledger.ensure_reversal_covered(
                mirror, balance=await balance_of(uow.session, original.account_id)
            )
            txn_id = await ledger_store.post(uow, mirror, announce=True)
            if txn_id is None:
                raise Conflict(f"transaction {transaction_id} was already reversed")
            await self.decisions.evaluate_account(uow, original.account_id, now=utcnow())
        return txn_id

    async def reversed_payments(self, *, payment_ids: list[str]) -> list[str]:
        """Return those of the payments whose top-up was reversed (冲正)."""
        async with self.store.sessionmaker() as session:
            return await ledger_store.reversed_payments(session, payment_ids)

    async def check_top_up(
        self, *, account_id: str, amount: Decimal, key: str | None = None
    ) -> None:
        """Refuse a top-up that would lift the balance above the account's cap.

        With a key (a receipt), the headroom is held for it until it is credited: racing
        top-ups queue on the account and each sees the others' holds.
        """
        async with self.store.unit_of_work() as uow:
            await top_up_holds.lock_account(uow.session, account_id)
            account = await account_store.require_account(uow.session, account_id)
            if await site_store.is_closed(uow.session, account_id):
                raise Conflict(f"account {account_id} is closed (moved out or transferred)")
            if key is not None and await top_up_holds.hold_exists(uow.session, account_id, key):
                return  # asked again for the same receipt: as the first time
            if account.balance_cap is None:
                return
            now = utcnow()
            balance = await balance_of(uow.session, account_id)
            held = await top_up_holds.pending_total(uow.session, account_id, now=now)
            ensure_top_up_fits(balance=balance + held, amount=amount, cap=account.balance_cap)
            if key is not None:
                await top_up_holds.insert_hold(
                    uow.session,
                    account_id=account_id,
                    key=key,
                    amount=amount,
                    now=now,
                    expires_at=now + TOP_UP_HOLD,
                )
