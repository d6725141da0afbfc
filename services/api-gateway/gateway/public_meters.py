"""Meters as the public sees them: the collector's view of each, with the account billing
has it bound to, and only a tenant's own meters for a tenant."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prepaid_common.contracts.api.gateway import PublicMeter, PublicMeterPage
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
    *, principal: Principal, collector: Upstream, billing: Upstream, meter_id: str
) -> PublicMeter:
    """Return one meter, refused as missing if the caller may not see it."""
    meter = (await with_accounts(billing, [await collector.get(f"/internal/meters/{meter_id}")]))[0]
    if not principal.may_see_account(meter.account_id):
        raise NotFound(f"meter {meter_id} does not exist")
    return meter
