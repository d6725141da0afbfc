"""The site office (物业营业厅): tenants and premises, move-out (销户) and transfer (过户), the
readings history (抄表记录), the cashier's shift close (收费员日结), receipts (收据), postpaid
terms and bills, common-area apportionment (公摊)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from prepaid_common.contracts.api.billing import Items
from prepaid_common.contracts.api.payments import PaymentView
from prepaid_common.contracts.api.receipts import PaymentReceipt, ReceiptRequest
from prepaid_common.contracts.api.site_office import (
    AccountClosed,
    ApportionmentRule,
    ApportionmentRuleBody,
    ApportionmentRun,
    ApportionmentRunBody,
    MoveOutBody,
    PostpaidBill,
    PostpaidTerms,
    ReadingPage,
    ShiftCloseBody,
    ShiftView,
    TenantPage,
    TenantProfile,
    TransferBody,
)
from prepaid_common.errors import NotFound

from gateway.api.deps import (
    AdminUser,
    AuditLog,
    Billing,
    CurrentUser,
    Limit,
    Offset,
    PathId,
    Payments,
    StaffUser,
    as_operator,
    ensure_visible,
)
from gateway.api.downloads import file_response, wanted_format
from gateway.documents.pdf import PDF_MEDIA_TYPE, render_pdf
from gateway.documents.receipts import receipt_document

router = APIRouter(tags=["site office"])

Place = Annotated[str | None, Query(max_length=100)]
# A time with its zone, as ISO 8601 (what next_before answers): a bare number or a time
# without a zone is refused here (422), not read as seconds since 1970 or as local time.
Stamp = Annotated[
    str | None,
    Query(
        pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})$",
        description="An ISO 8601 time with its zone",
    ),
]


@router.put("/accounts/{account_id}/profile")
async def set_profile(
    principal: StaffUser, billing: Billing, audit: AuditLog, account_id: PathId, body: TenantProfile
) -> TenantProfile:
    """Set the tenant's name, phone, e-mail and premises (building, floor, room, area)."""
    _, saved = await billing.call(
        "PUT", f"/internal/accounts/{account_id}/profile", json=body.model_dump(mode="json")
    )
    await audit.record("account.profile", account_id, body.model_dump(mode="json"))
    return TenantProfile.model_validate(saved)


@router.get("/accounts/{account_id}/profile")
async def profile(principal: CurrentUser, billing: Billing, account_id: PathId) -> TenantProfile:
    """The tenant and the premises of an account (a tenant sees their own)."""
    ensure_visible(principal, account_id)
    return TenantProfile.model_validate(
        await billing.get(f"/internal/accounts/{account_id}/profile")
    )


@router.get("/tenants")
async def tenants(
    principal: StaffUser,
    billing: Billing,
    q: Annotated[str | None, Query(max_length=100, description="In id, names, phone, room")] = None,
    building: Place = None,
    floor: Place = None,
    room: Place = None,
    include_closed: bool = False,
    limit: Limit = 50,
    offset: Offset = 0,
) -> TenantPage:
    """Find tenants by building, floor and room, or by a text in the account id, the
    account or tenant name, the phone or the room; closed accounts only when asked."""
    return TenantPage.model_validate(
        await billing.get(
            "/internal/tenants",
            q=q,
            building=building,
            floor=floor,
            room=room,
            include_closed=include_closed,
            limit=limit,
            offset=offset,
        )
    )


@router.get("/meters/{meter_id}/readings")
async def readings(
    principal: CurrentUser,
    billing: Billing,
    meter_id: PathId,
    since: Stamp = None,
    before: Stamp = None,  # continue from next_before
    limit: Limit = 100,
) -> ReadingPage:
    """The meter's readings, newest first (抄表记录); a tenant sees only their own meter's,
    and only those since it was bound to their account."""
    if principal.is_staff:
        return ReadingPage.model_validate(
            await billing.get(
                f"/internal/meters/{meter_id}/readings", since=since, before=before, limit=limit
            )
        )
    for account_id in sorted(principal.account_ids):
        try:
            return ReadingPage.model_validate(
                await billing.get(
                    f"/internal/meters/{meter_id}/readings",
                    since=since,
                    before=before,
                    limit=limit,
                    for_account=account_id,
                )
            )
        except NotFound:
            continue
    raise NotFound(f"meter {meter_id} does not exist")


@router.post("/accounts/{account_id}/move-out")
async def move_out(
    principal: StaffUser, billing: Billing, audit: AuditLog, account_id: PathId, body: MoveOutBody
) -> AccountClosed:
    """Close the account (销户): each meter charged to its final reading, the credit left
    refunded (or kept), the meters released and cut until a new tenant is bound. The same
    ``key`` replays the first answer."""
    _, closed = await billing.post(
        f"/internal/accounts/{account_id}/move-out", json=as_operator(body, principal)
    )
    await audit.record("account.move_out", account_id, body.model_dump(mode="json"))
    return AccountClosed.model_validate(closed)


@router.post("/accounts/{account_id}/transfer")
async def transfer(
    principal: StaffUser, billing: Billing, audit: AuditLog, account_id: PathId, body: TransferBody
) -> AccountClosed:
    """Hand the premises to a new tenant (过户): the old account settled and closed, a new
    account opened on the same terms with the meters, its credit carried or refunded."""
    _, closed = await billing.post(
        f"/internal/accounts/{account_id}/transfer", json=as_operator(body, principal)
    )
    await audit.record("account.transfer", account_id, body.model_dump(mode="json"))
    return AccountClosed.model_validate(closed)


@router.get("/cashier-shifts/current")
async def current_shift(principal: StaffUser, billing: Billing) -> ShiftView:
    """The caller's open shift: the cash the ledger says they took since their last close."""
    return ShiftView.model_validate(
        await billing.get("/internal/cashier-shifts/open", cashier=principal.username)
    )


@router.post("/cashier-shifts", status_code=201)
async def close_shift(
    principal: StaffUser, billing: Billing, audit: AuditLog, body: ShiftCloseBody
) -> ShiftView:
    """Close the caller's shift with the cash they counted: the difference from the ledger
    is recorded with it."""
    _, closed = await billing.post("/internal/cashier-shifts", json=as_operator(body, principal))
    shift = ShiftView.model_validate(closed)
    await audit.record(
        "cashier.shift_close",
        principal.username,
        {"counted_cash": str(body.counted_cash), "difference": str(shift.difference)},
    )
    return shift


@router.get("/cashier-shifts")
async def shifts(
    principal: StaffUser,
    billing: Billing,
    cashier: Annotated[str | None, Query(max_length=64)] = None,
    limit: Limit = 50,
) -> Items[ShiftView]:
    """Closed shifts, newest first; an operator sees their own, an admin anyone's."""
    if principal.role != "admin":
        cashier = principal.username
    return Items[ShiftView].model_validate(
        await billing.get("/internal/cashier-shifts", cashier=cashier, limit=limit)
    )


ReceiptFormat = Annotated[
    Literal["json", "pdf"] | None,
    Query(alias="format", description="json (default) or pdf; or ask by the Accept header"),
]


@router.get(
    "/payments/{payment_id}/receipt",
    response_model=PaymentReceipt,
    responses={
        200: {
            "content": {PDF_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
            "description": "JSON, or the receipt as a PDF to print (?format=pdf or Accept)",
        }
    },
)
async def payment_receipt(
    request: Request,
    principal: CurrentUser,
    payments: Payments,
    billing: Billing,
    payment_id: PathId,
    file_format: ReceiptFormat = None,
) -> Any:
    """The receipt of a payment (收据): number, account and premises, the amount in figures
    and in Chinese capitals, the channel, the cashier or the provider's transaction id, the
    time in the site's zone and the balance after; a reversed payment's says it is void. A
    payment id is what a top-up answers as ``id``; a tenant sees only their own."""
    try:
        payment = PaymentView.model_validate(await payments.get(f"/internal/payments/{payment_id}"))
    except NotFound:
        payment = None
    # Someone else's payment is missing to a tenant, and the answer names no account.
    if payment is None or not principal.may_see_account(payment.account_id):
        raise NotFound(f"payment {payment_id} does not exist")
    _, answer = await billing.post(
        "/internal/receipts",
        json=ReceiptRequest.model_validate(payment.model_dump()).model_dump(mode="json"),
    )
    receipt = PaymentReceipt.model_validate(answer)
    # An Accept of a spreadsheet gets JSON: a receipt is printed, not added up.
    if wanted_format(request, file_format) != "pdf":
        return receipt
    document = receipt_document(receipt)
    return file_response(
        render_pdf(document), filename=f"{document.name}.pdf", media_type=PDF_MEDIA_TYPE
    )


@router.put("/accounts/{account_id}/postpaid-terms")
async def set_postpaid_terms(
    principal: AdminUser, billing: Billing, audit: AuditLog, account_id: PathId, body: PostpaidTerms
) -> PostpaidTerms:
    """Set a postpaid account's due day, grace days, late fee rate and cut when overdue."""
    _, saved = await billing.call(
        "PUT", f"/internal/accounts/{account_id}/postpaid-terms", json=body.model_dump(mode="json")
    )
    await audit.record("account.postpaid_terms", account_id, body.model_dump(mode="json"))
    return PostpaidTerms.model_validate(saved)


@router.get("/accounts/{account_id}/postpaid-bill")
async def postpaid_bill(
    principal: CurrentUser, billing: Billing, account_id: PathId
) -> PostpaidBill:
    """The last closed month's bill: owed, unpaid, due day, overdue, late fees."""
    ensure_visible(principal, account_id)
    return PostpaidBill.model_validate(
        await billing.get(f"/internal/accounts/{account_id}/postpaid-bill")
    )


@router.post("/apportionment-rules", status_code=201)
async def define_rule(
    principal: AdminUser, billing: Billing, audit: AuditLog, body: ApportionmentRuleBody
) -> ApportionmentRule:
    """Define (or redefine) how a common account's energy cost is shared among members."""
    _, saved = await billing.post(
        "/internal/apportionment-rules", json=as_operator(body, principal)
    )
    await audit.record("apportionment.rule", body.id, body.model_dump(mode="json"))
    return ApportionmentRule.model_validate(saved)


@router.get("/apportionment-rules")
async def rules(principal: StaffUser, billing: Billing) -> Items[ApportionmentRule]:
    """Every apportionment rule."""
    return Items[ApportionmentRule].model_validate(
        await billing.get("/internal/apportionment-rules")
    )


@router.post("/apportionment-rules/{rule_id}/runs", status_code=201)
async def run_rule(
    principal: AdminUser,
    billing: Billing,
    audit: AuditLog,
    rule_id: PathId,
    body: ApportionmentRunBody,
) -> ApportionmentRun:
    """Share a month's common cost (the month must have ended); once per rule and month, a
    repeat answers the first run."""
    _, run = await billing.post(
        f"/internal/apportionment-rules/{rule_id}/runs", json=as_operator(body, principal)
    )
    await audit.record("apportionment.run", rule_id, {"month": body.month})
    return ApportionmentRun.model_validate(run)
