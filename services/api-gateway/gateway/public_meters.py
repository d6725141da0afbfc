"""Meters as the public sees them: the collector's view of each, with the account billing
has it bound to, and only a tenant's own meters for a tenant."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prepaid_common.contracts.api.control import CommandPage
from prepaid_common.contracts.api.gateway import PowerLimitState, PublicMeter, PublicMeterPage
from prepaid_common.errors import NotFound

from gateway.domain import Principal
from gateway.upstream import Upstream


async def with_accounts(billing: Upstream, meters: Sequence[dict[str, Any]]) -> list[PublicMeter]:
    """Return the collector's meter views, each with the account it is bound to (or None)."""
    if not meters:
        return []
    bindings = await billing.get(
        "/internal/meter-bindings", meter_ids=",".join(m["id"] for m in meters)
    )
    owner = {b["meter_id"]: b["account_id"] for b in bindings["items"]}
    return [PublicMeter.model_validate({**m, "account_id": owner.get(m["id"])}) for m in meters]


async def meter_page(
    *, principal: Principal, collector: Upstream, billing: Upstream, limit: int, offset: int
) -> PublicMeterPage:
    """Return a page of the meters the caller may see (a tenant: those of its accounts)."""
    ids: str | None = None
    if not principal.is_staff:
        if not principal.account_ids:
            return PublicMeterPage(items=[], total=0, limit=limit, offset=offset)
        bindings = await billing.get(
            "/internal/meter-bindings", account_ids=",".join(sorted(principal.account_ids))
        )
        ids = ",".join(b["meter_id"] for b in bindings["items"])
        if not ids:
            return PublicMeterPage(items=[], total=0, limit=limit, offset=offset)
    page = await collector.get("/internal/meters", limit=limit, offset=offset, ids=ids)
    return PublicMeterPage(
        items=await with_accounts(billing, page["items"]),
        total=page["total"],
        limit=page["limit"],
        offset=page["offset"],
    )


async def visible_meter(
    *,
    principal: Principal,
    collector: Upstream,
    billing: Upstream,
    meter_id: str,
    control: Upstream | None = None,
) -> PublicMeter:
    """Return one meter, refused as missing if the caller may not see it; with ``control``,
    a model with a power limit shows the limit last asked beside the one it reports."""
    meter = (await with_accounts(billing, [await collector.get(f"/internal/meters/{meter_id}")]))[0]
    if not principal.may_see_account(meter.account_id):
        raise NotFound(f"meter {meter_id} does not exist")
    if control is not None and meter.commands is not None and "power_limit" in meter.commands:
        meter.power_limit = await _power_limit(control, meter)
    return meter


async def _power_limit(control: Upstream, meter: PublicMeter) -> PowerLimitState:
    page = CommandPage.model_validate(
        await control.get("/internal/commands", meter_id=meter.id, action="power_limit", limit=1)
    )
    asked = page.items[0] if page.items else None
    return PowerLimitState(
        asked_kw=None if asked is None else asked.power_limit_kw,
        asked_at=None if asked is None else asked.created_at,
        command_id=None if asked is None else asked.id,
        status=None if asked is None else asked.status,
        reported_kw=None if meter.last_reading is None else meter.last_reading.power_limit_kw,
    )
