"""The use cases billing's API offers, by area; each runs as one unit of work."""

from __future__ import annotations

from dataclasses import dataclass

from billing.operations.accounts import AccountOperations
from billing.operations.imports import ImportOperations
from billing.operations.meters import MeterOperations
from billing.operations.money import MoneyOperations
from billing.operations.site_office import SiteOfficeOperations
from billing.operations.supply import SupplyOperations
from billing.operations.tariffs import TariffOperations


@dataclass(frozen=True)
class BillingOperations:
    """Every operation area, as bootstrap wires them."""

    tariffs: TariffOperations
    accounts: AccountOperations
    meters: MeterOperations
    supply: SupplyOperations
    money: MoneyOperations
    site_office: SiteOfficeOperations
    imports: ImportOperations
