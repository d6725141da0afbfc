"""The facts notifications hears that its owners had to start saying: billing's two
low-balance levels and a cut deferred by friendly hours; payments' issues for operators."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import time, timedelta
from decimal import Decimal

import pytest
from billing.domain.supply import FriendlyWindow, SitePolicy
from billing.service import BillingService
from prepaid_common.bus import InProcessBus
from prepaid_common.contracts import ReadingV1, utcnow
from prepaid_common.contracts.messages import BalanceLowV1, CutImminentV1
from testkit.billing import BillingHarness, billing_harness

NOW = utcnow().replace(microsecond=0)


class Harness(BillingHarness):
    def __init__(self, service: BillingService, bus: InProcessBus) -> None:
        super().__init__(service, bus)
        self.low = self.capture("balance.low.v1", BalanceLowV1)
        self.imminent = self.capture("cut.imminent.v1", CutImminentV1)

    async def read(self, meter: str, minutes: int, kwh: str) -> None:
        await self.deliver(
            ReadingV1(
                meter_id=meter,
                dtu_id="D1",
                read_at=NOW + timedelta(minutes=minutes),
                energy_kwh=Decimal(kwh),
            )
        )


@pytest.fixture
async def billing(backend: tuple[str, str]) -> AsyncIterator[Harness]:
    database_url, _ = backend
    async with billing_harness(database_url, Harness) as harness:
        yield harness


async def test_each_warning_level_is_said_once_per_crossing(billing: Harness) -> None:
    await billing.open_account("A1", "M1", credit="20", warning_line=Decimal("10.00"))
    await billing.flush()
    await billing.read("M1", 0, "0")
    await billing.read("M1", 1, "5")  # 15.00: above both lines
    await billing.flush()
    assert billing.low == []
    await billing.read("M1", 2, "12")  # 8.00: level 1
    await billing.read("M1", 3, "13")  # 7.00: still level 1, not said again
    await billing.flush()
    assert [(m.level, m.line) for m in billing.low] == [(1, Decimal("10.00"))]
    await billing.read("M1", 4, "21")  # -1.00: the cut line (0.00), and the cut
    await billing.flush()
    assert [(m.level, m.balance) for m in billing.low] == [
        (1, Decimal("8.00")),
        (2, Decimal("-1.00")),
    ]
    await billing.read("M1", 5, "22")  # cut already: nothing more
    await billing.flush()
    assert len(billing.low) == 2
    assert billing.imminent == []


async def test_friendly_hours_say_the_cut_is_imminent(billing: Harness) -> None:
    await billing.service.operations.supply.set_policy(
        policy=SitePolicy(friendly_windows=[FriendlyWindow(start=time(0), end=time(23, 59, 59))])
    )
    await billing.open_account("A1", "M1", credit="1")
    await billing.flush()
    await billing.read("M1", 0, "0")
    await billing.read("M1", 1, "5")
    await billing.flush()
    assert {(m.account_id, m.meter_id) for m in billing.imminent} == {("A1", "M1")}
    assert {m.level for m in billing.low} == {1, 2}
