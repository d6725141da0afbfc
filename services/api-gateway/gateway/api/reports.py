"""Data for people: statements, usage, the dunning list and tripped accounts, as JSON or as
files to print or open in Excel (``?format=xlsx|pdf`` or the Accept header)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from prepaid_common.contracts.api.billing import (
    AccountView,
    DunningItem,
    Items,
    Page,
    Statement,
    UsageReport,
)
from prepaid_common.contracts.api.sales import SalesReport
from prepaid_common.contracts.api.usage import GroupUsageReport
from prepaid_common.contracts.dates import IsoDate
from prepaid_common.errors import Invalid

from gateway.api.deps import (
    Billing,
    Collector,
    CurrentUser,
    Month,
    PathId,
    StaffUser,
    ensure_visible,
)
from gateway.api.downloads import FILE_RESPONSES, FormatQuery, file_response, wanted_format
from gateway.documents.layout import Document
from gateway.documents.pdf import PDF_MEDIA_TYPE, render_pdf
from gateway.documents.reports import (
    dunning_document,
    group_usage_document,
    sales_document,
    statement_document,
    tripped_document,
    usage_document,
)
from gateway.documents.xlsx import XLSX_MEDIA_TYPE, render_xlsx
from gateway.public_meters import visible_meter
from gateway.upstream import Upstream

router = APIRouter(tags=["reports"])

From = Annotated[IsoDate | None, Query(alias="from", description="First day (YYYY-MM-DD)")]
To = Annotated[IsoDate | None, Query(alias="to", description="Last day (YYYY-MM-DD)")]
Granularity = Literal["day", "month"]


def _answer(request: Request, asked: Any, data: Any, document: Any) -> Any:
    """``data`` as JSON, or ``document()`` rendered as the file asked for."""
    file_format = wanted_format(request, asked)
    if file_format == "json":
        return data
    built: Document = document()
    if file_format == "xlsx":
        return file_response(
            render_xlsx(built), filename=f"{built.name}.xlsx", media_type=XLSX_MEDIA_TYPE
        )
    return file_response(render_pdf(built), filename=f"{built.name}.pdf", media_type=PDF_MEDIA_TYPE)


@router.get(
    "/accounts/{account_id}/statements/{month}",
    response_model=Statement,
    responses=FILE_RESPONSES,
)
async def statement(
    request: Request,
    principal: CurrentUser,
    billing: Billing,
    account_id: PathId,
    month: Month,
    file_format: FormatQuery = None,
) -> Any:
    """Monthly statement (YYYY-MM, 打印账单): opening, movements, closing, arrears, amount
    due; as JSON, XLSX or PDF."""
    ensure_visible(principal, account_id)
    data = Statement.model_validate(
        await billing.get(f"/internal/accounts/{account_id}/statements/{month}")
    )
    return _answer(request, file_format, data, lambda: statement_document(data))


@router.get("/accounts/{account_id}/usage", response_model=UsageReport, responses=FILE_RESPONSES)
async def account_usage(
    request: Request,
    principal: CurrentUser,
    billing: Billing,
    account_id: PathId,
    start: From = None,
    end: To = None,
    granularity: Granularity = "day",
    file_format: FormatQuery = None,
) -> Any:
    """Energy and cost per day or month for the account's meters (用电报表: metered against
    billed); as JSON, XLSX or PDF."""
    ensure_visible(principal, account_id)
    data = await _usage(billing, start, end, granularity, account_id=account_id)
    return _answer(
        request,
        file_format,
        data,
        lambda: usage_document(data, subject="account", subject_id=account_id),
    )


@router.get("/meters/{meter_id}/usage", response_model=UsageReport, responses=FILE_RESPONSES)
async def meter_usage(
    request: Request,
    principal: CurrentUser,
    collector: Collector,
    billing: Billing,
    meter_id: PathId,
    start: From = None,
    end: To = None,
    granularity: Granularity = "day",
    file_format: FormatQuery = None,
) -> Any:
    """Energy and cost per day or month for one meter (energy analysis); a tenant sees only
    its own binding's, from the day the meter was bound to it."""
    await visible_meter(
        principal=principal, collector=collector, billing=billing, meter_id=meter_id
    )
    own = {} if principal.is_staff else {"current_binding": "true"}
    data = await _usage(billing, start, end, granularity, meter_id=meter_id, **own)
    return _answer(
        request,
        file_format,
        data,
        lambda: usage_document(data, subject="meter", subject_id=meter_id),
    )


async def _usage(
    billing: Upstream, start: date | None, end: date | None, granularity: str, **subject: str
) -> UsageReport:
    # ``subject`` is the one of account_id or meter_id the report is for.
    period = {"from": start and start.isoformat(), "to": end and end.isoformat()}
    return UsageReport.model_validate(
        await billing.get("/internal/usage", **subject, granularity=granularity, **period)
    )


# A group name is free text an operator chose ("block-a", "floor:3", "A栋"); one with a
# control character cannot be any account's group, and the databases refuse a NUL.
GroupName = Annotated[
    str,
    Path(
        min_length=1,
        max_length=100,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="An account group, as the accounts' `groups` name it",
        examples=["block-a"],
    ),
]


@router.get("/groups/{group}/usage", response_model=GroupUsageReport, responses=FILE_RESPONSES)
async def group_usage(
    request: Request,
    principal: StaffUser,
    billing: Billing,
    group: GroupName,
    start: From = None,
    end: To = None,
    granularity: Granularity = "day",
    file_format: FormatQuery = None,
) -> Any:
    """The energy report of an account group (用电报表 by group): each account that carries
    the group, its meters, metered against billed per period and in total, and the group's
    totals; as JSON, XLSX or PDF. 404 when no account carries the group."""
    if start is not None and end is not None and end < start:
        raise Invalid("'to' is before 'from'")
    period = {"from": start and start.isoformat(), "to": end and end.isoformat()}
    data = GroupUsageReport.model_validate(
        await billing.get("/internal/group-usage", group=group, granularity=granularity, **period)
    )
    return _answer(request, file_format, data, lambda: group_usage_document(data))


@router.get("/dunning", response_model=Items[DunningItem], responses=FILE_RESPONSES)
async def dunning(
    request: Request, principal: StaffUser, billing: Billing, file_format: FormatQuery = None
) -> Any:
    """Accounts that owe money (催缴单); as JSON, or the notice as XLSX or PDF."""
    data = Items[DunningItem].model_validate(await billing.get("/internal/dunning"))
    return _answer(request, file_format, data, lambda: dunning_document(data.items))


@router.get("/reports/tripped", response_model=Items[AccountView], responses=FILE_RESPONSES)
async def tripped_accounts(
    request: Request, principal: StaffUser, billing: Billing, file_format: FormatQuery = None
) -> Any:
    """Accounts with a meter whose supply is off (断电户清单); as JSON, XLSX or PDF."""
    tripped: list[AccountView] = []
    offset = 0
    while True:
        page = Page[AccountView].model_validate(
            await billing.get("/internal/accounts", limit=500, offset=offset)
        )
        tripped += [a for a in page.items if a.supply == "off"]
        offset += len(page.items)
        if not page.items or offset >= page.total:
            break
    data = Items[AccountView](items=tripped)
    return _answer(request, file_format, data, lambda: tripped_document(tripped))


@router.get("/reports/sales", response_model=SalesReport, responses=FILE_RESPONSES)
async def sales(
    request: Request,
    principal: StaffUser,
    billing: Billing,
    start: Annotated[IsoDate, Query(alias="from", description="First day (YYYY-MM-DD)")],
    end: Annotated[IsoDate, Query(alias="to", description="Last day (YYYY-MM-DD)")],
    granularity: Granularity = "day",
    file_format: FormatQuery = None,
) -> Any:
    """Daily or monthly sales (收款报表) by channel and operator, from the ledger; as JSON,
    XLSX or PDF."""
    if end < start:
        raise Invalid("'to' is before 'from'")
    data = SalesReport.model_validate(
        await billing.get(
            "/internal/sales",
            **{"from": start.isoformat(), "to": end.isoformat()},
            granularity=granularity,
        )
    )
    return _answer(request, file_format, data, lambda: sales_document(data))
