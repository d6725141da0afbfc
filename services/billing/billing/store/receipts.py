"""What a receipt reads from the ledger: a payment's top-up, the balance after it and its
reversal."""

from __future__ import annotations

from decimal import Decimal

from prepaid_common.contracts.api.receipts import ReceiptReversal
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.domain.ledger import arrears_ledger, tenant_ledger
from billing.domain.receipts import TopUpPosting, reversal_reason
from billing.tables import entries, transactions


async def top_up_posting(session: AsyncSession, payment_id: str) -> TopUpPosting | None:
    """Return what the ledger posted for a payment, or None while it is not credited yet."""
    top_up = (
        await session.execute(
            select(transactions.c.id, transactions.c.account_id).where(
                transactions.c.operation_key == f"payment:{payment_id}",
                transactions.c.kind == "top_up",
            )
        )
    ).first()
    if top_up is None:
        return None
    tenant = tenant_ledger(top_up.account_id)
    last_line = await session.scalar(
        select(func.max(entries.c.id)).where(entries.c.transaction_id == top_up.id)
    )
    # The same running sum as the ledger page's balance_after (entries in id order), so the
    # receipt and the account's ledger line say the same.
    balance_after = await session.scalar(
        select(func.sum(entries.c.amount)).where(
            entries.c.ledger_account == tenant, entries.c.id <= last_line
        )
    )
    to_arrears = await session.scalar(
        select(func.sum(entries.c.amount)).where(
            entries.c.transaction_id == top_up.id,
            entries.c.ledger_account == arrears_ledger(top_up.account_id),
        )
    )
    # By its operation key (unique, indexed), as ledger.reversal names it: once per top-up.
    reversal = (
        await session.execute(
            select(
                transactions.c.id,
                transactions.c.created_at,
                transactions.c.operator,
                transactions.c.memo,
            ).where(transactions.c.operation_key == f"reversal:{top_up.id}")
        )
    ).first()
    return TopUpPosting(
        balance_after=balance_after if balance_after is not None else Decimal("0.00"),
        to_arrears=to_arrears if to_arrears is not None else Decimal("0.00"),
        reversal=None
        if reversal is None
        else ReceiptReversal(
            transaction_id=reversal.id,
            reversed_at=reversal.created_at,
            operator=reversal.operator,
            reason=reversal_reason(reversal.memo),
        ),
    )
