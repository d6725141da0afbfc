"""A bulk import across the collector and billing: check everything, then write all or none.

1. The file is read (``documents``): problems seen in the file alone, by row and column.
2. Both services check their part against their rules and what they hold (a dry run stops
   here and writes nothing).
3. With no problem anywhere, the collector registers its part in one transaction, then
   billing writes its part in one transaction. Each re-checks inside its transaction, so
   something written meanwhile makes it refuse, with nothing of its part written.
4. If billing fails after the collector wrote, the collector removes exactly what this
   import created (its compensation): the import left nothing. Were the collector
   unreachable then too, the DTUs and meters stay registered without accounts; the answer
   says so, and applying the same file again finishes it: every service takes an item
   already there exactly as written as "unchanged", so a second apply only adds the rest.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable
from typing import Any

from prepaid_common.contracts.api.imports import (
    FieldApplied,
    FieldRemoval,
    ImportCheck,
    ImportProblem,
    ImportReport,
    LedgerApplied,
)
from prepaid_common.errors import ServiceError, Unavailable

from gateway.documents.import_plan import ImportPlan, plan_import
from gateway.documents.sheets import read_sheets
from gateway.upstream import Upstream

log = logging.getLogger(__name__)


class ImportRefused(ServiceError):
    """An apply refused because of problems in the file: nothing was written."""

    code = "import_invalid"

    def __init__(self, report: ImportReport) -> None:
        super().__init__(f"{len(report.problems)} problem(s) in the file; nothing was written")
        self.report = report


def read_plan(data: bytes) -> tuple[str, ImportPlan]:
    """Return the file's format and what it says (problems of the file alone included)."""
    kind, file_sheets = read_sheets(data)
    return kind, plan_import(file_sheets)


async def check_import(
    *, data: bytes, collector: Upstream, billing: Upstream, operator: str, import_id: str | None
) -> tuple[ImportReport, ImportPlan]:
    """Read the file and have both services check it; write nothing."""
    kind, plan = read_plan(data)
    plan.ledger_items = plan.ledger_items.model_copy(update={"operator": operator})
    field_check, ledger_check = await asyncio.gather(
        _post(collector, "/internal/imports/check", plan.field_items.model_dump(mode="json")),
        _post(billing, "/internal/imports/check", plan.ledger_items.model_dump(mode="json")),
    )
    checks = [ImportCheck.model_validate(field_check), ImportCheck.model_validate(ledger_check)]
    problems = list(plan.problems)
    for check in checks:
        problems += [plan.locate(problem) for problem in check.problems]
    problems.sort(key=_place)
    report = ImportReport(
        import_id=import_id or str(uuid.uuid4()),
        dry_run=True,
        applied=False,
        file_format="xlsx" if kind == "xlsx" else "csv",
        rows=plan.rows,
        new={k: v for check in checks for k, v in check.new.items()},
        unchanged={k: v for check in checks for k, v in check.unchanged.items()},
        problems=problems,
    )
    return report, plan


async def apply_import(
    *, data: bytes, collector: Upstream, billing: Upstream, operator: str, import_id: str | None
) -> ImportReport:
    """Check, then write everything (collector, then billing) or nothing."""
    report, plan = await check_import(
        data=data, collector=collector, billing=billing, operator=operator, import_id=import_id
    )
    report = report.model_copy(update={"dry_run": False})
    if report.problems:
        raise ImportRefused(report)
    _, answer = await collector.post(
        "/internal/imports/apply", plan.field_items.model_dump(mode="json")
    )
    field_applied = FieldApplied.model_validate(answer)
    try:
        _, answer = await billing.post(
            "/internal/imports/apply", plan.ledger_items.model_dump(mode="json")
        )
    except ServiceError as error:
        await _compensate(collector, field_applied, report.import_id, error)
        raise type(error)(
            f"import {report.import_id}: billing refused or failed ({error.detail}); the "
            f"{len(field_applied.created_meters)} meters and {len(field_applied.created_dtus)} "
            "DTUs the collector registered for it were removed again, so nothing of it is "
            "left (should billing have written its part before its answer was lost, applying "
            "the same file again registers them again)"
        ) from error
    LedgerApplied.model_validate(answer)
    log.info("import %s applied: %s", report.import_id, report.new)
    return report.model_copy(update={"applied": True})


async def _compensate(
    collector: Upstream, applied: FieldApplied, import_id: str, cause: Exception
) -> None:
    """Remove what the collector registered for this import; say so if it cannot be."""
    removal = FieldRemoval(dtus=applied.created_dtus, meters=applied.created_meters)
    log.warning("import %s: billing failed (%s); removing its DTUs and meters", import_id, cause)
    try:
        await collector.call("POST", "/internal/imports/removal", json=removal.model_dump())
    except ServiceError as error:
        log.error("import %s: removal failed too: %s", import_id, error)
        raise Unavailable(
            f"import {import_id}: billing failed ({cause}) and the collector could not remove "
            f"the {len(removal.meters)} meters and {len(removal.dtus)} DTUs it registered "
            f"({error}); apply the same file again to finish the import"
        ) from error


async def _post(upstream: Upstream, path: str, body: Any) -> Any:
    call: Awaitable[tuple[int, Any]] = upstream.post(path, body)
    _, answer = await call
    return answer


def _place(problem: ImportProblem) -> tuple[str, int, str]:
    return (problem.sheet, problem.row, problem.column)
