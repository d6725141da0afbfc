"""An operator's spreadsheet read into what each service checks and writes.

Everything wrong that can be seen in the file alone (a missing value, a bad number, an id
twice, two rows disagreeing about one DTU or account) is a problem here, by row and
column; what needs the services' knowledge (profiles, what exists) they check themselves.
A row with a problem gives no item, so that the services' checks never repeat it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from prepaid_common.contracts.api.collector import DtuKind
from prepaid_common.contracts.api.imports import (
    AccountRow,
    BindingRow,
    DtuRow,
    FieldImport,
    ImportProblem,
    LedgerImport,
    MeterRow,
    ProblemCode,
    RowProblem,
    TariffRow,
)
from prepaid_common.contracts.identifiers import IDENTIFIER_PATTERN

from gateway.documents.columns import (
    MAIN_COLUMNS,
    MAIN_SHEET,
    TARIFF_COLUMNS,
    TARIFF_SHEET,
    ImportColumn,
    match_headers,
    sheet_role,
)
from gateway.documents.sheets import Sheet

_ID = re.compile(IDENTIFIER_PATTERN)
_NUMBER = re.compile(r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)$")
_PHONE = re.compile(r"^\+?[0-9][0-9 \-]{4,19}$")
_DTU_KINDS: tuple[DtuKind, ...] = ("modbus-tcp", "rtu-over-tcp", "dtu-client")
MAX_GROUPS = 20


@dataclass
class ImportPlan:
    """The items of a file for each service, the problems seen in the file alone, and the
    header each field was read from (to name a service's problem by the file's column)."""

    field_items: FieldImport
    ledger_items: LedgerImport
    problems: list[ImportProblem]
    rows: int
    main_sheet: str
    headers: dict[tuple[str, str], str] = field(default_factory=dict)

    def locate(self, problem: RowProblem) -> ImportProblem:
        """Return a service's problem as the operator sees it: sheet, row, column."""
        sheet = problem.sheet or self.main_sheet
        column = self.headers.get((sheet, problem.field), problem.field)
        return ImportProblem(
            sheet=sheet, row=problem.row, column=column, code=problem.code, message=problem.message
        )


class _Row:
    """One data row being read: its cells by field, and the problems found in it."""

    def __init__(
        self,
        number: int,
        cells: list[str],
        index: dict[str, int],
        sheet: str,
        headers: dict[tuple[str, str], str],
        report: Callable[[ImportProblem], None],
    ) -> None:
        self.number = number
        self.cells = cells
        self.index = index
        self.sheet = sheet
        self.headers = headers
        self.report = report
        self.bad = False

    def get(self, name: str) -> str:
        position = self.index.get(name)
        return self.cells[position].strip() if position is not None else ""

    def problem(self, name: str, code: ProblemCode, message: str) -> None:
        self.bad = True
        self.report(
            ImportProblem(
                sheet=self.sheet,
                row=self.number,
                column=self.headers.get((self.sheet, name), name),
                code=code,
                message=message,
            )
        )

    def identifier(self, name: str, what: str) -> str:
        value = self.get(name)
        if value and not _ID.match(value):
            self.problem(
                name, "bad_value", f"{what} {value!r}: letters, digits, '_', '-', ':' (1 to 64)"
            )
            return ""
        return value

    def decimal(
        self, name: str, what: str, *, places: int, maximum: Decimal, positive: bool = True
    ) -> Decimal | None:
        value = self.get(name)
        if not value:
            return None
        if not _NUMBER.match(value):
            self.problem(name, "bad_number", f"{what} {value!r} is not a number")
            return None
        try:
            number = Decimal(value)
        except InvalidOperation:  # pragma: no cover - the pattern admits only numbers
            self.problem(name, "bad_number", f"{what} {value!r} is not a number")
            return None
        if (positive and number <= 0) or number > maximum:
            self.problem(name, "bad_number", f"{what} {value} is out of range (0 to {maximum})")
            return None
        if number != number.quantize(Decimal(1).scaleb(-places)):
            self.problem(name, "bad_number", f"{what} {value} has more than {places} decimals")
            return None
        return number

    def integer(self, name: str, what: str, low: int, high: int) -> int | None:
        value = self.get(name)
        if not value:
            return None
        if not value.isdigit() or not low <= int(value) <= high:
            self.problem(name, "bad_number", f"{what} {value!r} is not a whole number {low}-{high}")
            return None
        return int(value)


def plan_import(file_sheets: list[Sheet]) -> ImportPlan:
    """Read the sheets of an import file into items and problems (nothing is checked
    against the services here)."""
    problems: list[ImportProblem] = []
    headers: dict[tuple[str, str], str] = {}
    main, tariff_sheet = _pick_sheets(file_sheets)
    plan = ImportPlan(
        field_items=FieldImport(),
        ledger_items=LedgerImport(),
        problems=problems,
        rows=0,
        main_sheet=main.name if main else "",
        headers=headers,
    )
    if main is None or not main.headers:
        problems.append(_file_problem(main, "the file has no header row"))
        return plan
    index = _columns(main, MAIN_COLUMNS, headers)
    if not {"meter_id", "dtu_id", "account_id"} & index.keys():
        problems.append(
            _file_problem(
                main,
                "no column names a meter, a DTU or an account; known columns: "
                + ", ".join(c.header for c in MAIN_COLUMNS),
            )
        )
        return plan
    tariffs: dict[str, TariffRow] = {}
    if tariff_sheet is not None and tariff_sheet.headers:
        _read_tariffs(tariff_sheet, headers, tariffs, problems)
    reader = _MainReader(main, index, headers, problems, tariffs)
    reader.read()
    plan.rows = reader.count
    plan.field_items = FieldImport(dtus=list(reader.dtus.values()), meters=reader.meters)
    plan.ledger_items = LedgerImport(
        tariffs=list(tariffs.values()),
        accounts=list(reader.accounts.values()),
        bindings=reader.bindings,
    )
    return plan


def _pick_sheets(file_sheets: list[Sheet]) -> tuple[Sheet | None, Sheet | None]:
    by_role = {sheet_role(s.name): s for s in reversed(file_sheets)}
    tariffs = by_role.get(TARIFF_SHEET)
    main = by_role.get(MAIN_SHEET)
    if main is None:
        main = next((s for s in file_sheets if s is not tariffs), None)
    return main, tariffs


def _file_problem(sheet: Sheet | None, message: str) -> ImportProblem:
    return ImportProblem(
        sheet=sheet.name if sheet else "", row=0, column="", code="unreadable", message=message
    )


def _columns(
    sheet: Sheet, columns: tuple[ImportColumn, ...], headers: dict[tuple[str, str], str]
) -> dict[str, int]:
    index, _unknown = match_headers(sheet.headers, columns)
    for name, position in index.items():
        headers[(sheet.name, name)] = sheet.headers[position]
    return index


def _read_tariffs(
    sheet: Sheet,
    headers: dict[tuple[str, str], str],
    tariffs: dict[str, TariffRow],
    problems: list[ImportProblem],
) -> None:
    index = _columns(sheet, TARIFF_COLUMNS, headers)
    first: dict[str, int] = {}
    for number, cells in enumerate(sheet.rows, start=sheet.first_row):
        if not any(cells):
            continue
        row = _Row(number, cells, index, sheet.name, headers, problems.append)
        tariff_id = row.identifier("tariff_id", "tariff id")
        if not tariff_id and not row.bad:
            row.problem("tariff_id", "missing", "a tariff row needs its id")
        name = row.get("tariff_name") or tariff_id
        if len(name) > 200:
            row.problem("tariff_name", "bad_value", "a tariff name has at most 200 characters")
        price = row.decimal("price", "price", places=4, maximum=Decimal("999999"))
        if price is None and not row.get("price"):
            row.problem("price", "missing", f"tariff {tariff_id}: give its price per kWh")
        if tariff_id in first:
            row.problem(
                "tariff_id", "duplicate_id", f"tariff {tariff_id} is also on row {first[tariff_id]}"
            )
        if tariff_id:
            first.setdefault(tariff_id, number)
        if row.bad or price is None:
            continue
        tariffs[tariff_id] = TariffRow(number, sheet.name, tariff_id, name, price, "tariff_id")


class _MainReader:
    """Reads the main sheet's rows, keeping each DTU and account once (first row wins)."""

    def __init__(
        self,
        sheet: Sheet,
        index: dict[str, int],
        headers: dict[tuple[str, str], str],
        problems: list[ImportProblem],
        tariffs: dict[str, TariffRow],
    ) -> None:
        self.sheet = sheet
        self.index = index
        self.headers = headers
        self.problems = problems
        self.tariffs = tariffs
        self.count = 0
        self.dtus: dict[str, DtuRow] = {}
        self.accounts: dict[str, AccountRow] = {}
        self.meters: list[MeterRow] = []
        self.bindings: list[BindingRow] = []
        self.meter_rows: dict[str, int] = {}

    def read(self) -> None:
        for number, cells in enumerate(self.sheet.rows, start=self.sheet.first_row):
            if not any(cells):
                continue
            self.count += 1
            row = _Row(
                number, cells, self.index, self.sheet.name, self.headers, self.problems.append
            )
            self._row(row)

    def _row(self, row: _Row) -> None:
        meter_id = row.identifier("meter_id", "meter id")
        dtu_id = row.identifier("dtu_id", "DTU id")
        account_id = row.identifier("account_id", "account id")
        if not (meter_id or dtu_id or account_id):
            if not row.bad:
                row.problem("meter_id", "missing", "the row names no meter, DTU or account")
            return
        dtu = self._dtu(row, dtu_id) if dtu_id else None
        meter = self._meter(row, meter_id, dtu_id) if meter_id else None
        account = self._account(row, account_id) if account_id else None
        multiplier = row.decimal("multiplier", "multiplier", places=4, maximum=Decimal("99999999"))
        # Rows that disagree about a DTU or an account are problems even on a bad row; only
        # a row with no problem gives items.
        keep = not row.bad
        if dtu is not None:
            self._keep_dtu(row, dtu, keep=keep)
        if account is not None:
            self._keep_account(row, account, keep=keep)
        if meter is not None and not row.bad:
            self.meters.append(meter)
            if account_id:
                self.bindings.append(
                    BindingRow(row.number, meter_id, account_id, multiplier or Decimal(1))
                )

    def _dtu(self, row: _Row, dtu_id: str) -> DtuRow:
        kind_text = row.get("dtu_kind").lower()
        kind: DtuKind | None = None
        if kind_text:
            kind = next((k for k in _DTU_KINDS if k == kind_text), None)
            if kind is None:
                row.problem(
                    "dtu_kind",
                    "bad_value",
                    f"DTU kind {kind_text!r}: one of {', '.join(_DTU_KINDS)}",
                )
        name = row.get("dtu_name") or None
        if name is not None and len(name) > 128:
            row.problem("dtu_name", "bad_value", "a DTU name has at most 128 characters")
        host = row.get("host") or None
        if host is not None and (len(host) > 255 or " " in host):
            row.problem("host", "bad_value", f"host {host!r} is not a host name or address")
        port = row.integer("port", "port", 1, 65535)
        return DtuRow(row.number, dtu_id, name, kind, host, port)

    def _keep_dtu(self, row: _Row, dtu: DtuRow, *, keep: bool) -> None:
        known = self.dtus.get(dtu.id)
        if known is None:
            if keep:
                self.dtus[dtu.id] = dtu
            return
        merged = known
        for name, mine, theirs in zip(
            ("name", "kind", "host", "port"), dtu[2:], known[2:], strict=True
        ):
            if mine is None:
                continue
            if theirs is None:
                merged = merged._replace(**{name: mine})  # type: ignore[arg-type]
            elif mine != theirs:
                column = "dtu_" + name if name in ("name", "kind") else name
                row.problem(
                    column, "conflict", f"DTU {dtu.id}: {mine} here, {theirs} on row {known.row}"
                )
        if keep and not row.bad:
            self.dtus[dtu.id] = merged

    def _meter(self, row: _Row, meter_id: str, dtu_id: str) -> MeterRow | None:
        if meter_id in self.meter_rows:
            row.problem(
                "meter_id",
                "duplicate_id",
                f"meter {meter_id} is also on row {self.meter_rows[meter_id]}",
            )
        else:
            self.meter_rows[meter_id] = row.number
        if not dtu_id and not row.get("dtu_id"):
            row.problem("dtu_id", "missing", f"meter {meter_id}: which DTU is it behind?")
        address = row.get("address")
        unit_id = row.integer("unit_id", "unit id", 1, 247)
        if address and (not address.isdigit() or len(address) > 12):
            row.problem(
                "address", "bad_address", f"address {address!r}: a unit id or 12 DL/T 645 digits"
            )
            address = ""
        elif address and unit_id is not None and int(address) != unit_id:
            row.problem(
                "address", "bad_address", f"address {address} and unit id {unit_id} disagree"
            )
        if not address and unit_id is not None:
            address = str(unit_id)
        if not address and not row.get("address") and not row.get("unit_id"):
            row.problem("address", "missing", f"meter {meter_id}: give its address or unit id")
        profile = row.get("profile")
        if not profile:
            row.problem("profile", "missing", f"meter {meter_id}: give its profile (型号)")
        elif len(profile) > 64:
            row.problem("profile", "unknown_profile", "a profile name has at most 64 characters")
        if row.bad:
            return None
        return MeterRow(row.number, meter_id, dtu_id, address, profile)

    def _account(self, row: _Row, account_id: str) -> AccountRow:
        name = row.get("tenant_name") or None
        if name is not None and len(name) > 200:
            row.problem("tenant_name", "bad_value", "a tenant name has at most 200 characters")
        phone = row.get("phone")
        if phone and not _PHONE.match(phone):
            row.problem(
                "phone", "bad_value", f"phone {phone!r}: digits, spaces, '-', a leading '+'"
            )
        groups = [g.strip() for g in re.split(r"[;；,，]", row.get("group")) if g.strip()]
        if len(groups) > MAX_GROUPS or any(len(g) > 100 for g in groups):
            row.problem("group", "bad_value", f"at most {MAX_GROUPS} groups of 100 characters")
        return AccountRow(row.number, account_id, name, self._tariff(row), sorted(set(groups)))

    def _tariff(self, row: _Row) -> str | None:
        written = row.get("tariff")
        if not written:
            return None
        if _NUMBER.match(written):
            price = row.decimal("tariff", "price", places=4, maximum=Decimal("999999"))
            if price is None:
                return None
            tariff_id = f"flat-{price.normalize():f}"  # as billing names a flat tariff
            self.tariffs.setdefault(
                tariff_id,
                TariffRow(
                    row.number,
                    self.sheet.name,
                    tariff_id,
                    f"Flat {price} yuan/kWh",
                    price,
                    "tariff",
                ),
            )
            return tariff_id
        if not _ID.match(written):
            row.problem("tariff", "bad_value", f"tariff {written!r}: a tariff id or a price")
            return None
        return written

    def _keep_account(self, row: _Row, account: AccountRow, *, keep: bool) -> None:
        known = self.accounts.get(account.id)
        if known is None:
            if keep:
                self.accounts[account.id] = account
            return
        merged = known
        for attribute, name in (("name", "tenant_name"), ("tariff_id", "tariff")):
            mine, theirs = getattr(account, attribute), getattr(known, attribute)
            if mine is None:
                continue
            if theirs is None:
                merged = merged._replace(**{attribute: mine})
            elif mine != theirs:
                row.problem(
                    name,
                    "conflict",
                    f"account {account.id}: {mine} here, {theirs} on row {known.row}",
                )
        if account.groups and known.groups and account.groups != known.groups:
            row.problem(
                "group", "conflict", f"account {account.id}: other groups on row {known.row}"
            )
        elif account.groups:
            merged = merged._replace(groups=account.groups)
        if keep and not row.bad:
            self.accounts[account.id] = merged
