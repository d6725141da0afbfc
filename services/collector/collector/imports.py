"""Bulk import of DTUs and meters: check every row against the registration rules and what
is registered, then register them all in one transaction, or none.

The rules are the registration's own (``domain.registration``, ``domain.profiles``): a
known profile, an address the meter's protocol and its DTU can have, one meter per address
on a bus, a dialled DTU's host and port. An id already registered exactly as written is
left as it is ("unchanged"), so applying the same file again changes nothing; an id
registered otherwise is a problem, never an update.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from prepaid_common.contracts.api.collector import (
    DIALLED_KINDS,
    DtuKind,
    DtuRegistration,
    default_registration,
)
from prepaid_common.contracts.api.imports import (
    FieldApplied,
    FieldImport,
    FieldRemoval,
    ImportCheck,
    ProblemCode,
    RowProblem,
)
from prepaid_common.errors import Conflict
from prepaid_common.outbox import ServiceStore
from sqlalchemy.exc import IntegrityError

from collector.domain import Dlt645Profile, Profile
from collector.operations import Fleet
from collector.records import imports as records

log = logging.getLogger(__name__)

MAX_METERS_PER_DTU = 247


@dataclass
class _Verdict:
    problems: list[RowProblem] = field(default_factory=list)
    new_dtus: list[dict[str, Any]] = field(default_factory=list)
    new_meters: list[dict[str, Any]] = field(default_factory=list)
    unchanged_dtus: int = 0
    unchanged_meters: int = 0

    def problem(self, row: int, name: Any, code: ProblemCode, message: str) -> None:
        self.problems.append(RowProblem(row=row, field=name, code=code, message=message))

    def check(self) -> ImportCheck:
        return ImportCheck(
            problems=self.problems,
            new={"dtus": len(self.new_dtus), "meters": len(self.new_meters)},
            unchanged={"dtus": self.unchanged_dtus, "meters": self.unchanged_meters},
        )


class ImportOperations:
    """Check and apply the field part of a bulk import; remove it again on request."""

    def __init__(
        self, *, store: ServiceStore, profiles: Mapping[str, Profile], fleet: Fleet
    ) -> None:
        self.store = store
        self.profiles = profiles
        self.fleet = fleet

    async def check(self, plan: FieldImport) -> ImportCheck:
        """Return every problem of the DTUs and meters, and what is new; writes nothing."""
        async with self.store.sessionmaker() as session:
            known = await records.existing(
                session, [d.id for d in plan.dtus], [m.id for m in plan.meters]
            )
        return _judge(plan, known, self.profiles).check()

    async def apply(self, plan: FieldImport) -> FieldApplied:
        """Register every new DTU and meter in one transaction; Conflict (nothing written)
        if any row no longer checks (something registered meanwhile)."""
        try:
            async with self.store.unit_of_work() as uow:
                known = await records.existing(
                    uow.session, [d.id for d in plan.dtus], [m.id for m in plan.meters]
                )
                verdict = _judge(plan, known, self.profiles)
                if verdict.problems:
                    first = verdict.problems[0]
                    raise Conflict(
                        f"{len(verdict.problems)} problem(s), nothing registered; "
                        f"row {first.row}: {first.message}"
                    )
                await records.insert_new(uow.session, verdict.new_dtus, verdict.new_meters)
        except IntegrityError:
            raise Conflict(
                "a DTU or meter of the import was registered concurrently; nothing registered"
            ) from None
        self._follow(plan, known, verdict)
        return FieldApplied(
            created_dtus=[d["id"] for d in verdict.new_dtus],
            created_meters=[m["id"] for m in verdict.new_meters],
            new=verdict.check().new,
        )

    async def remove(self, removal: FieldRemoval) -> None:
        """Remove what an import created (its compensation when the ledger part failed)."""
        async with self.store.unit_of_work() as uow:
            touched = await records.remove(uow.session, removal.dtus, removal.meters)
        log.warning(
            "import removed again: %d DTUs, %d meters", len(removal.dtus), len(removal.meters)
        )
        for dtu_id in sorted(touched | set(removal.dtus)):
            # Every bus loop reloads its meters; a loop whose DTU is gone ends.
            self.fleet.follow_registration(
                DtuRegistration(id=dtu_id, name=dtu_id, kind="dtu-client", enabled=False)
            )

    def _follow(self, plan: FieldImport, known: records.Existing, verdict: _Verdict) -> None:
        """Let the bus loops pick up the DTUs that are new or have new meters."""
        touched = {m["dtu_id"] for m in verdict.new_meters} | {d["id"] for d in verdict.new_dtus}
        new = {d["id"]: d for d in verdict.new_dtus}
        for dtu_id in sorted(touched):
            settings = new.get(dtu_id)
            if settings is None:
                have = known.dtus[dtu_id]
                settings = {"id": dtu_id, "kind": have.kind, "host": have.host, "port": have.port}
            self.fleet.follow_registration(
                DtuRegistration(
                    id=dtu_id,
                    name=dtu_id,
                    kind=settings["kind"],
                    host=settings["host"] or None,
                    port=settings["port"] or None,
                )
            )


def _judge(plan: FieldImport, known: records.Existing, profiles: Mapping[str, Profile]) -> _Verdict:
    verdict = _Verdict()
    kinds: dict[str, str] = {}
    for dtu in plan.dtus:
        have = known.dtus.get(dtu.id)
        if have is not None:
            kinds[dtu.id] = have.kind
            given: dict[str, tuple[object, object]] = {
                "dtu_name": (dtu.name, have.name),
                "dtu_kind": (dtu.kind, have.kind),
                "host": (dtu.host, have.host),
                "port": (dtu.port, have.port),
            }
            differs = [(n, g, h) for n, (g, h) in given.items() if g is not None and g != h]
            for name, mine, theirs in differs:
                verdict.problem(
                    dtu.row,
                    name,
                    "duplicate_id",
                    f"DTU {dtu.id} is registered already, with {theirs} (not {mine})",
                )
            if not differs:
                verdict.unchanged_dtus += 1
            continue
        kind: DtuKind = dtu.kind or "modbus-tcp"
        kinds[dtu.id] = kind
        if kind in DIALLED_KINDS and (dtu.host is None or dtu.port is None):
            verdict.problem(
                dtu.row,
                "host" if dtu.host is None else "port",
                "missing",
                f"DTU {dtu.id}: a {kind} DTU needs its host and port",
            )
            continue
        registration = default_registration(dtu.id) if kind == "dtu-client" else None
        owner = known.registrations.get(registration or "")
        if registration is not None and owner is not None:
            verdict.problem(
                dtu.row,
                "dtu_id",
                "duplicate_id",
                f"DTU {dtu.id}: registration {registration} is DTU {owner}'s",
            )
            continue
        verdict.new_dtus.append(
            {
                "id": dtu.id,
                "name": dtu.name or dtu.id,
                "kind": kind,
                "host": dtu.host or "",
                "port": dtu.port or 0,
                "enabled": True,
                "registration": registration,
                "registration_mode": "once",
                "heartbeat": "HB",
                "link_timeout_seconds": 180.0,
                "revision": 0,
            }
        )
    taken: dict[tuple[str, str], int] = {}
    on_dtu = dict(known.meters_on)
    for meter in plan.meters:
        profile = profiles.get(meter.profile)
        if profile is None:
            verdict.problem(
                meter.row,
                "profile",
                "unknown_profile",
                f"meter {meter.id}: unknown profile {meter.profile!r}; known: "
                + ", ".join(sorted(profiles)),
            )
            continue
        dtu_kind = kinds.get(meter.dtu_id)
        if dtu_kind is None:
            verdict.problem(
                meter.row,
                "dtu_id",
                "missing",
                f"meter {meter.id}: DTU {meter.dtu_id} is not usable",
            )
            continue
        stored = _stored_address(verdict, meter.row, meter.id, meter.address, profile, dtu_kind)
        if stored is None:
            continue
        have_meter = known.meters.get(meter.id)
        if have_meter is not None:
            if (have_meter.dtu_id, have_meter.address, have_meter.profile) == (
                meter.dtu_id,
                stored,
                meter.profile,
            ):
                verdict.unchanged_meters += 1
            else:
                verdict.problem(
                    meter.row,
                    "meter_id",
                    "duplicate_id",
                    f"meter {meter.id} is registered already: DTU {have_meter.dtu_id}, "
                    f"address {have_meter.address}, profile {have_meter.profile}",
                )
            continue
        spot = (meter.dtu_id, stored)
        occupant = known.addresses.get(spot)
        if occupant is not None or spot in taken:
            where = f"meter {occupant}'s" if occupant else f"the meter's on row {taken[spot]}"
            verdict.problem(
                meter.row,
                "address",
                "duplicate_address",
                f"DTU {meter.dtu_id}: address {stored} is already {where}",
            )
            continue
        taken[spot] = meter.row
        on_dtu[meter.dtu_id] = on_dtu.get(meter.dtu_id, 0) + 1
        if on_dtu[meter.dtu_id] > MAX_METERS_PER_DTU:
            verdict.problem(
                meter.row,
                "dtu_id",
                "too_many",
                f"DTU {meter.dtu_id}: more than {MAX_METERS_PER_DTU} meters on one bus",
            )
            continue
        verdict.new_meters.append(
            {
                "id": meter.id,
                "dtu_id": meter.dtu_id,
                "address": stored,
                "unit_id": None if isinstance(profile, Dlt645Profile) else int(stored),
                "profile": meter.profile,
            }
        )
    return verdict


def _stored_address(
    verdict: _Verdict, row: int, meter_id: str, address: str, profile: Profile, kind: str
) -> str | None:
    """The address as the registry keeps it (see ``domain.registration``), or None after
    recording why it cannot be one."""
    if isinstance(profile, Dlt645Profile):
        if len(address) != 12 or not address.isdigit():
            verdict.problem(
                row,
                "address",
                "bad_address",
                f"meter {meter_id}: a DL/T 645 meter needs a 12-digit address, not {address!r}",
            )
            return None
        if kind == "modbus-tcp":
            verdict.problem(
                row,
                "address",
                "bad_address",
                f"meter {meter_id}: DL/T 645 needs a transparent link (rtu-over-tcp or "
                "dtu-client), not a Modbus TCP gateway",
            )
            return None
        return address
    if not address.isdigit() or not 1 <= int(address) <= 247:
        verdict.problem(
            row, "address", "bad_address", f"meter {meter_id}: a Modbus unit id is 1 to 247"
        )
        return None
    return str(int(address))
