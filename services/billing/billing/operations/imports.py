"""Bulk import of tariffs, accounts and bindings: check every row against billing's rules
and what it holds, then write them all in one unit of work, or none.

The rules are those of defining a tariff, opening an account and binding a meter: a new
account needs a name and a tariff that exists (or that the import defines), a meter is
bound to one account, a bound meter's supply is decided at once and announced to control.
An item already there exactly as written is "unchanged", so applying the same file again
changes nothing; one there otherwise is a problem, never an update.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from prepaid_common.contracts import SupplyDecidedV1, utcnow
from prepaid_common.contracts.api.billing import AccountTerms
from prepaid_common.contracts.api.imports import (
    ImportCheck,
    LedgerApplied,
    LedgerImport,
    ProblemCode,
    RowProblem,
)
from prepaid_common.errors import Conflict
from prepaid_common.outbox import ServiceStore
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from billing.decisions import SupplyDecisions
from billing.domain.tariffs import TariffDefinition, version_effective_from
from billing.operations.tariffs import TariffOperations
from billing.store import imports as import_store
from billing.store.meters import bindings_for_rating


@dataclass
class _Verdict:
    problems: list[RowProblem] = field(default_factory=list)
    tariffs: list[dict[str, Any]] = field(default_factory=list)
    versions: list[dict[str, Any]] = field(default_factory=list)
    accounts: list[dict[str, Any]] = field(default_factory=list)
    groups: list[dict[str, Any]] = field(default_factory=list)
    bindings: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    unchanged: dict[str, int] = field(
        default_factory=lambda: {"tariffs": 0, "accounts": 0, "bindings": 0}
    )

    def problem(
        self, row: int, name: Any, code: ProblemCode, message: str, sheet: str = ""
    ) -> None:
        self.problems.append(
            RowProblem(row=row, sheet=sheet, field=name, code=code, message=message)
        )

    @property
    def new(self) -> dict[str, int]:
        return {
            "tariffs": len(self.tariffs),
            "accounts": len(self.accounts),
            "bindings": len(self.bindings),
        }

    def check(self) -> ImportCheck:
        return ImportCheck(problems=self.problems, new=self.new, unchanged=self.unchanged)


class ImportOperations:
    """Check and apply the ledger part of a bulk import."""

    def __init__(
        self, *, store: ServiceStore, tariffs: TariffOperations, decisions: SupplyDecisions
    ) -> None:
        self.store = store
        self.tariffs = tariffs
        self.decisions = decisions

    async def check(self, plan: LedgerImport) -> ImportCheck:
        """Return every problem of the tariffs, accounts and bindings; writes nothing."""
        async with self.store.sessionmaker() as session:
            return (await _judge(session, plan, now=utcnow())).check()

    async def apply(self, plan: LedgerImport) -> LedgerApplied:
        """Write every new tariff, account and binding in one unit of work, decide the new
        meters' supply and announce it; Conflict (nothing written) if a row no longer
        checks."""
        try:
            async with self.store.unit_of_work() as uow:
                now = utcnow()
                verdict = await _judge(uow.session, plan, now=now)
                if verdict.problems:
                    first = verdict.problems[0]
                    raise Conflict(
                        f"{len(verdict.problems)} problem(s), nothing written; "
                        f"row {first.row}: {first.message}"
                    )
                await import_store.insert_all(
                    uow.session,
                    new_tariffs=verdict.tariffs,
                    new_versions=verdict.versions,
                    new_accounts=verdict.accounts,
                    new_groups=verdict.groups,
                    new_bindings=verdict.bindings,
                    new_history=verdict.history,
                )
                meter_ids = [b["meter_id"] for b in verdict.bindings]
                if meter_ids:
                    # The decision a bind makes (decisions.evaluate_account), for every
                    # account with a new meter; those already settled are skipped as
                    # after readings.
                    bound = await bindings_for_rating(uow.session, meter_ids)
                    touched = {b["account_id"] for b in verdict.bindings}
                    await self.decisions.evaluate_after_readings(
                        uow, bound, dict.fromkeys(sorted(touched), now)
                    )
                    # What decisions.announce tells control of a meter just bound, read
                    # once for the whole set.
                    decided = await import_store.supplies(uow.session, meter_ids)
                    for binding in verdict.bindings:
                        await uow.emit(
                            SupplyDecidedV1(
                                meter_id=binding["meter_id"],
                                account_id=binding["account_id"],
                                supply="off" if decided[binding["meter_id"]] == "off" else "on",
                                reason="meter bound",
                                at=utcnow(),
                            )
                        )
        except IntegrityError:
            raise Conflict(
                "an account, tariff or binding of the import was written concurrently; "
                "nothing written"
            ) from None
        if verdict.tariffs:
            self.tariffs.reference.clear()
        return LedgerApplied(new=verdict.new)


async def _judge(session: AsyncSession, plan: LedgerImport, *, now: datetime) -> _Verdict:
    verdict = _Verdict()
    tariff_ids = sorted(
        {t.id for t in plan.tariffs} | {a.tariff_id for a in plan.accounts if a.tariff_id}
    )
    defined = await import_store.current_definitions(session, tariff_ids, now=now)
    in_file: set[str] = set()
    for tariff in plan.tariffs:
        wanted = TariffDefinition(kind="flat", price_per_kwh=tariff.price_per_kwh)
        have = defined.get(tariff.id)
        in_file.add(tariff.id)
        if have is not None:
            if have == wanted:
                verdict.unchanged["tariffs"] += 1
            else:
                verdict.problem(
                    tariff.row,
                    tariff.field,
                    "duplicate_id",
                    f"tariff {tariff.id} exists already with another definition",
                    sheet=tariff.sheet,
                )
            continue
        verdict.tariffs.append({"id": tariff.id, "name": tariff.name, "created_at": now})
        verdict.versions.append(
            {
                "id": str(uuid.uuid4()),
                "tariff_id": tariff.id,
                "effective_from": version_effective_from(
                    tariff_exists=False, requested=None, now=now
                ),
                "definition": wanted.model_dump(mode="json"),
                "created_by": plan.operator,
                "created_at": now,
            }
        )
    account_ids = [a.id for a in plan.accounts]
    known = await import_store.accounts_named(session, account_ids)
    known_groups = await import_store.groups_of_accounts(session, list(known))
    terms = AccountTerms()
    for account in plan.accounts:
        have = known.get(account.id)
        if have is not None:
            differs = [
                (name, mine, theirs)
                for name, mine, theirs in (
                    ("tenant_name", account.name, have.name),
                    ("tariff", account.tariff_id, have.tariff_id),
                )
                if mine is not None and mine != theirs
            ]
            groups = known_groups.get(account.id, set())
            if account.groups and set(account.groups) != groups:
                differs.append(("group", ";".join(account.groups), ";".join(sorted(groups))))
            for name, mine, theirs in differs:
                verdict.problem(
                    account.row,
                    name,
                    "duplicate_id",
                    f"account {account.id} exists already, with {theirs or '-'} (not {mine})",
                )
            if not differs:
                verdict.unchanged["accounts"] += 1
            continue
        problems = len(verdict.problems)
        if account.name is None:
            verdict.problem(
                account.row, "tenant_name", "missing", f"new account {account.id} needs a name"
            )
        if account.tariff_id is None:
            verdict.problem(
                account.row,
                "tariff",
                "no_tariff",
                f"new account {account.id} has no tariff: give a tariff id or a price",
            )
        elif account.tariff_id not in in_file and account.tariff_id not in defined:
            verdict.problem(
                account.row,
                "tariff",
                "unknown_tariff",
                f"account {account.id}: tariff {account.tariff_id} is not defined",
            )
        if len(verdict.problems) > problems:
            continue
        verdict.accounts.append(
            {
                "id": account.id,
                "name": account.name,
                "tariff_id": account.tariff_id,
                **terms.model_dump(),
                "warned": False,
                "created_at": now,
            }
        )
        verdict.groups += [{"account_id": account.id, "group_name": g} for g in account.groups]
    bound = await import_store.bound_accounts(session, [b.meter_id for b in plan.bindings])
    for binding in plan.bindings:
        owner = bound.get(binding.meter_id)
        if owner == binding.account_id:
            verdict.unchanged["bindings"] += 1
            continue
        if owner is not None:
            verdict.problem(
                binding.row,
                "meter_id",
                "duplicate_id",
                f"meter {binding.meter_id} is bound to account {owner} already",
            )
            continue
        verdict.bindings.append(
            {
                "meter_id": binding.meter_id,
                "account_id": binding.account_id,
                "tariff_id": None,
                "multiplier": binding.multiplier,
                "position": None,
                "supply": "on",
                "bound_at": now,
            }
        )
        verdict.history.append(
            {
                "meter_id": binding.meter_id,
                "account_id": binding.account_id,
                "event": "bound",
                "final_kwh": None,
                "detail": "imported",
                "operator": plan.operator,
                "at": now,
            }
        )
    return verdict
