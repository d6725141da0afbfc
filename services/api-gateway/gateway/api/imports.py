"""Bulk import of DTUs, meters, accounts, bindings and tariffs from a CSV or XLSX file."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Header, Query, UploadFile
from fastapi.responses import JSONResponse
from prepaid_common.contracts.api.imports import ImportReport
from prepaid_common.errors import Invalid
from prepaid_common.http_errors import problem, problem_responses
from pydantic import BaseModel

from gateway.api.deps import AdminUser, AuditLog, Billing, Collector, StaffUser
from gateway.api.downloads import CSV_MEDIA_TYPE, file_response
from gateway.documents.columns import MAIN_COLUMNS, MAIN_SHEET, TARIFF_COLUMNS, TARIFF_SHEET
from gateway.documents.template import template_csv, template_xlsx
from gateway.documents.xlsx import XLSX_MEDIA_TYPE
from gateway.importing import ImportRefused, apply_import, check_import

router = APIRouter(tags=["imports"])

UploadedFile = Annotated[
    UploadFile, File(description="The filled-in template: .xlsx, or .csv (UTF-8 or GB18030)")
]
ImportId = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Applying again with the same key answers the first apply again",
    ),
]


class TemplateColumn(BaseModel):
    """One column of the import template."""

    sheet: str
    header: str
    field: str
    chinese: str
    english: str
    aliases: list[str]
    example: str
    note: str


class ImportTemplate(BaseModel):
    """The import template's columns, as the XLSX and CSV templates head them."""

    columns: list[TemplateColumn]


@router.get(
    "/imports/template",
    response_model=ImportTemplate,
    responses={
        200: {
            "content": {
                XLSX_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}},
                "text/csv": {"schema": {"type": "string", "format": "binary"}},
            },
            "description": "The template as XLSX (default) or CSV; its columns as JSON",
        }
    },
)
async def import_template(
    principal: StaffUser,
    file_format: Annotated[Literal["xlsx", "csv", "json"], Query(alias="format")] = "xlsx",
) -> Any:
    """The import template (导入模板): the columns an import reads, in Chinese and English;
    ``format=json`` describes them."""
    if file_format == "json":
        return ImportTemplate(
            columns=[
                TemplateColumn(
                    sheet=sheet,
                    header=c.header,
                    field=c.field,
                    chinese=c.chinese,
                    english=c.english,
                    aliases=list(c.aliases),
                    example=c.example,
                    note=c.note,
                )
                for sheet, columns in ((MAIN_SHEET, MAIN_COLUMNS), (TARIFF_SHEET, TARIFF_COLUMNS))
                for c in columns
            ]
        )
    if file_format == "csv":
        return file_response(
            template_csv(), filename="import-template.csv", media_type=CSV_MEDIA_TYPE
        )
    return file_response(
        template_xlsx(), filename="import-template.xlsx", media_type=XLSX_MEDIA_TYPE
    )


@router.post("/imports/check")
async def check_import_file(
    principal: StaffUser, collector: Collector, billing: Billing, file: UploadedFile
) -> ImportReport:
    """Dry run (预检): every problem of the file by row and column; nothing is written."""
    report, _plan = await check_import(
        data=await _read(file),
        collector=collector,
        billing=billing,
        operator=principal.username,
        import_id=None,
    )
    return report


@router.post("/imports", responses=problem_responses(409, 422, 503))
async def apply_import_file(
    principal: AdminUser,
    collector: Collector,
    billing: Billing,
    audit: AuditLog,
    file: UploadedFile,
    import_id: ImportId = None,
) -> ImportReport:
    """Import (导入): check, then write everything or nothing; 422 lists the problems."""
    data = await _read(file)
    try:
        # Finished even if the caller hangs up: the collector's part is never left alone.
        report = await asyncio.shield(
            apply_import(
                data=data,
                collector=collector,
                billing=billing,
                operator=principal.username,
                import_id=import_id,
            )
        )
    except ImportRefused as refused:
        return _refused(refused)  # type: ignore[return-value]
    await audit.record(
        "import.apply", report.import_id, {"file": file.filename or "", "new": report.new}
    )
    return report


def _refused(refused: ImportRefused) -> JSONResponse:
    return problem(
        422,
        refused.detail,
        refused.code,
        errors=[
            {
                "loc": ["file", p.sheet, p.row, p.column],
                "msg": p.message,
                "type": p.code,
            }
            for p in refused.report.problems
        ],
    )


async def _read(file: UploadFile) -> bytes:
    data = await file.read()
    if not data:
        raise Invalid("the file is empty")
    return data
