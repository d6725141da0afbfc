"""Accounts: opening and changing them, balances, ledgers, meters, top-ups and payments."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prepaid_common.contracts.api.billing import (
    AccountChanges,
    AccountView,
    Anomaly,
    LedgerLine,
    MeterBound,
    OpenAccount,
    Page,
    Window,
)
from prepaid_common.contracts.api.collector import MeterView
from prepaid_common.contracts.api.gateway import BindingBody
from prepaid_common.contracts.api.payments import PaymentPage, PaymentView, TopUpBody
from prepaid_common.errors import Conflict
from prepaid_common.http_errors import problem_responses

from gateway.api.deps import (
    AuditLog,
    Billing,
    Collector,
    CurrentUser,
    Limit,
    Offset,
    PathId,
    Payments,
    StaffUser,
    as_operator,
    ensure_visible,
)

router = APIRouter(tags=["accounts"])
_PROBLEM = problem_responses(409)[409]


@router.post(
    "/accounts",
    status_code=201,
    responses={200: {"model": AccountView, "description": "Opened before with the same terms"}},
)
async def open_account(
    principal: StaffUser, billing: Billing, audit: AuditLog, body: OpenAccount, response: Response
) -> AccountView:
    """Open an account on a tariff (or a flat ``price_per_kwh``), prepaid or postpaid."""
    status, account = await billing.post("/internal/accounts", json=as_operator(body, principal))
    response.status_code = status
    await audit.record("account.open", body.id, body.model_dump(mode="json"))
    return AccountView.model_validate(account)


@router.patch("/accounts/{account_id}")
async def change_account(
    principal: StaffUser,
    billing: Billing,
    audit: AuditLog,
    account_id: PathId,
    body: AccountChanges,
) -> AccountView:
    """Change an account's tariff, lines, limits, groups or protection."""
    changes = body.model_dump(mode="json", exclude_unset=True)
    _, account = await billing.call("PATCH", f"/internal/accounts/{account_id}", json=changes)
    await audit.record("account.change", account_id, changes)
    return AccountView.model_validate(account)


@router.get("/accounts")
async def list_accounts(
    principal: CurrentUser, billing: Billing, limit: Limit = 50, offset: Offset = 0
) -> Page[AccountView]:
    """Accounts with balances (tenants: their own)."""
    ids = None if principal.is_staff else ",".join(sorted(principal.account_ids))
    if ids == "":
        return Page[AccountView](items=[], total=0, limit=limit, offset=offset)
    return Page[AccountView].model_validate(
        await billing.get("/internal/accounts", ids=ids, limit=limit, offset=offset)
    )


@router.get("/accounts/{account_id}")
async def get_account(principal: CurrentUser, billing: Billing, account_id: PathId) -> AccountView:
    """One account and its balance."""
    ensure_visible(principal, account_id)
    return AccountView.model_validate(await billing.get(f"/internal/accounts/{account_id}"))


@router.get("/accounts/{account_id}/ledger")
async def account_ledger(
    principal: CurrentUser,
    billing: Billing,
    account_id: PathId,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[LedgerLine]:
    """The account's ledger entries, newest first, with the balance after each."""
    ensure_visible(principal, account_id)
    return Page[LedgerLine].model_validate(
        await billing.get(f"/internal/accounts/{account_id}/ledger", limit=limit, offset=offset)
    )


@router.post(
    "/accounts/{account_id}/meters",
    status_code=201,
    responses={
        200: {"model": MeterBound, "description": "Bound before: its terms changed"},
        409: {
            **_PROBLEM,
            "description": "Bound to another account, a second local-prepaid meter, or "
            "local-prepaid asked of a model that cannot take purchases",
        },
    },
)
async def bind_meter(
    principal: StaffUser,
    collector: Collector,
    billing: Billing,
    audit: AuditLog,
    account_id: PathId,
    body: BindingBody,
    response: Response,
) -> MeterBound:
    """Bind a meter to the account; its consumption is then charged there.

    Binding it again changes only whether it is local-prepaid and its local price; a model
    without the credit capability cannot be local-prepaid (409)."""
    meter = MeterView.model_validate(await collector.get(f"/internal/meters/{body.meter_id}"))
    # Billing does not know meter models: refused here, or its purchases would wait forever
    # for a meter that has no registers to take them.
    if body.local_prepaid and meter.commands is not None and "credit" not in meter.commands:
        raise Conflict(
            f"meter {body.meter_id} (profile {meter.profile}) cannot be local-prepaid: its "
            "model lacks the credit capability (local credit registers that take purchases)"
        )
    status, binding = await billing.post(
        "/internal/meter-bindings",
        json={**as_operator(body, principal), "account_id": account_id},
    )
    response.status_code = status
    await audit.record(
        "meter.bind",
        body.meter_id,
        {"account_id": account_id, **body.model_dump(mode="json", exclude_unset=True)},
    )
    return MeterBound.model_validate(binding)


@router.post(
    "/accounts/{account_id}/top-ups",
    status_code=201,
    responses={200: {"model": PaymentView, "description": "The receipt was taken before"}},
)
async def top_up(
    principal: StaffUser,
    billing: Billing,
    payments: Payments,
    audit: AuditLog,
    account_id: PathId,
    body: TopUpBody,
    response: Response,
) -> PaymentView:
    """Record cash paid at the counter; idempotent on the receipt number."""
    # Unknown account: 404; above the anti-hoarding cap: 409, before any money is taken.
    await billing.post(
        f"/internal/accounts/{account_id}/top-up-check",
        json={"amount": str(body.amount), "key": body.receipt},
    )
    _, answer = await payments.post(
        "/internal/top-ups",
        json={
            "account_id": account_id,
            "amount": str(body.amount),
            "receipt": body.receipt,
            "operator": principal.username,
        },
    )
    payment = PaymentView.model_validate(answer)
    if payment.replayed:
        response.status_code = 200
    else:
        await audit.record(
            "account.top_up",
            account_id,
            {"amount": str(body.amount), "receipt": body.receipt, "payment_id": payment.id},
        )
    return payment


@router.get("/accounts/{account_id}/payments")
async def account_payments(
    principal: CurrentUser,
    payments: Payments,
    billing: Billing,
    account_id: PathId,
    limit: Limit = 50,
    offset: Offset = 0,
) -> PaymentPage:
    """Payments received for the account, newest first; a payment whose top-up was
    reversed (冲正) shows the status ``reversed``."""
    ensure_visible(principal, account_id)
    page = PaymentPage.model_validate(
        await payments.get("/internal/payments", account_id=account_id, limit=limit, offset=offset)
    )
    if page.items:
        # The ledger knows reversals; payments knows the money came in. Said together here.
        found = await billing.get(
            "/internal/reversed-payments", payment_ids=",".join(p.id for p in page.items)
        )
        reversed_ids = set(found["items"])
        for payment in page.items:
            if payment.id in reversed_ids:
                payment.status = "reversed"
    return page


@router.get("/anomalies")
async def list_anomalies(
    principal: StaffUser,
    billing: Billing,
    meter_id: PathId | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Window[Anomaly]:
    """Field anomalies: readings refused for billing, local-prepaid mismatches, refusals."""
    return Window[Anomaly].model_validate(
        await billing.get("/internal/anomalies", meter_id=meter_id, limit=limit, offset=offset)
    )
