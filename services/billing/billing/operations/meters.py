"""Meters: bind one to an account, swap it for another, re-sync a local-prepaid meter."""

from __future__ import annotations

from decimal import Decimal

from prepaid_common.contracts import utcnow
from prepaid_common.errors import Conflict, NotFound
from prepaid_common.outbox import ServiceStore
from sqlalchemy.exc import IntegrityError

from billing import purchases
from billing.decisions import SupplyDecisions
from billing.domain import ledger
from billing.domain.meter_swap import TRUSTED_MAX_POWER_KW, carried_position, final_reading
from billing.domain.rating import position_from_json, position_to_json, rate_reading
from billing.store import accounts as account_store
from billing.store import ledger as ledger_store
from billing.store import locks
from billing.store import meters as meter_store
from billing.store.reference import load_policy, load_tariff_versions


class MeterOperations:
    """Bind, swap and re-sync meters."""

    def __init__(self, *, store: ServiceStore, decisions: SupplyDecisions) -> None:
        self.store = store
        self.decisions = decisions

    async def bind_meter(
        self,
        *,
        meter_id: str,
        account_id: str,
        multiplier: Decimal = Decimal(1),
        tariff_id: str | None = None,
        operator: str = "system",
        local_prepaid: bool | None = None,
        local_price: Decimal | None = None,
    ) -> bool:
        """Bind a meter to an account; its first reading then fixes the starting register.

        ``local_prepaid`` flags a meter that keeps its own credit (None: as it is; a new
        binding is not), ``local_price`` the yuan per kWh it debits. Binding a meter again to
        its account changes only these two.
        """
        try:
            async with self.store.unit_of_work() as uow:
                # The account's meters, then its row (store/locks.py): flagging reads and
                # queues its balance, and the supply decision writes its meters.
                await locks.lock_account(uow.session, account_id)
                await account_store.require_account(uow.session, account_id)
                bound = await meter_store.bound_account(uow.session, meter_id)
                if bound is not None and bound != account_id:
                    raise Conflict(f"meter {meter_id} is bound to account {bound}")
                now = utcnow()
                if bound is None:
                    await meter_store.insert_binding(
                        uow.session,
                        meter_id=meter_id,
                        account_id=account_id,
                        tariff_id=tariff_id,
                        multiplier=multiplier,
                        position=None,
                        supply="on",
                        now=now,
                    )
                    await meter_store.add_history(
                        uow.session,
                        meter_id=meter_id,
                        account_id=account_id,
                        event="bound",
                        final_kwh=None,
                        detail="",
                        operator=operator,
                        at=now,
                    )
                await purchases.flag_meter(
                    uow,
                    meter_id=meter_id,
                    account_id=account_id,
                    local_prepaid=local_prepaid,
                    price=local_price,
                )
                if bound is not None:
                    return False
                await self.decisions.evaluate_account(uow, account_id, now=now)
                # The relay may stand either way (left open by a previous tenant, say).
                await self.decisions.announce(
                    uow, meter_id=meter_id, account_id=account_id, reason="meter bound"
                )
        except IntegrityError as error:
            raise Conflict(f"meter {meter_id} was bound concurrently") from error
        return True

    async def swap_meter(
        self,
        *,
        old_meter_id: str,
        new_meter_id: str,
        old_final_kwh: Decimal,
        new_start_kwh: Decimal,
        operator: str,
    ) -> None:
        """Replace a meter (换表): charge the old one up to its final register, then bill
        the new one from its starting register, on the same account."""
        async with self.store.unit_of_work() as uow:
            session = uow.session
            old = await meter_store.meter_row(session, old_meter_id)
            if old is None:
                raise NotFound(f"meter {old_meter_id} is not bound")
            if await meter_store.bound_account(session, new_meter_id) is not None:
                raise Conflict(f"meter {new_meter_id} is already bound")
            now = utcnow()
            position = position_from_json(old.position)
            if position.last is not None:
                reading = final_reading(position, final_kwh=old_final_kwh, now=now)
                tariff_id = old.tariff_id
                if tariff_id is None:
                    tariff_id = (
                        await account_store.require_account(session, old.account_id)
                    ).tariff_id
                rating = rate_reading(
                    position,
                    reading,
                    versions=await load_tariff_versions(session, tariff_id),
                    zone=(await load_policy(session)).zone,
                    multiplier=old.multiplier,
                    max_power_kw=TRUSTED_MAX_POWER_KW,
                )
                if rating.charge != 0:
                    await ledger_store.post(
                        uow,
                        ledger.consumption_charge(
                            account_id=old.account_id,
                            meter_id=old_meter_id,
                            amount=rating.charge,
                            position_key=f"{old_final_kwh}@final",
                        ),
                    )
                position = rating.position
            carried = carried_position(position, start_kwh=new_start_kwh, now=now)
            await meter_store.delete_binding(session, old_meter_id)
            await meter_store.insert_binding(
                session,
                meter_id=new_meter_id,
                account_id=old.account_id,
                tariff_id=old.tariff_id,
                multiplier=old.multiplier,
                position=position_to_json(carried) if position.last is not None else None,
                supply=old.supply,
                now=now,
            )
            for meter_id, event, kwh in (
                (old_meter_id, "swapped_out", old_final_kwh),
                (new_meter_id, "swapped_in", new_start_kwh),
            ):
                await meter_store.add_history(
                    session,
                    meter_id=meter_id,
                    account_id=old.account_id,
                    event=event,
                    final_kwh=kwh,
                    detail=f"{old_meter_id} -> {new_meter_id}",
                    operator=operator,
                    at=now,
                )
            # The new meter inherits the old one's supply; its relay is held to it.
            await self.decisions.announce(
                uow,
                meter_id=new_meter_id,
                account_id=old.account_id,
                reason=f"swapped in for {old_meter_id} (supply {old.supply})",
            )

    async def resync_local_credit(self, *, meter_id: str) -> None:
        """Count a local-prepaid meter's purchases again from its next reading."""
        async with self.store.unit_of_work() as uow:
            await purchases.resync(uow, meter_id)
