"""How messages go: one per crossing (not per reading), quiet hours, preferences, retries
with back-off at a failing provider, a refused signature recorded, WeChat's token kept."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from prepaid_common.contracts import BalanceChangedV1, PaymentSucceededV1, RelayRequestedV1
from prepaid_common.contracts.messages import BalanceLowV1

from .conftest import Rig, running_rig

AT = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)


def low(level: int, balance: str, line: str) -> BalanceLowV1:
    return BalanceLowV1(
        account_id="A1", level=level, balance=Decimal(balance), line=Decimal(line), at=AT
    )


def paid(payment_id: str) -> PaymentSucceededV1:
    return PaymentSucceededV1(
        payment_id=payment_id,
        account_id="A1",
        amount=Decimal("20"),
        method="cash",
        reference=payment_id,
        at=AT,
    )


async def quiet_for(rig: Rig, seconds: float = 0.5) -> None:
    """Let the dispatcher run a few rounds (for asserting that nothing more arrives)."""
    await rig.service.dispatch_once()
    await asyncio.sleep(seconds)


async def test_one_message_per_crossing_not_per_reading(rig: Rig) -> None:
    await rig.prefer("A1", channels={"low_balance_1": ["sms"]})
    for balance in ("9.00", "8.00", "7.50"):  # billing says the level again: one crossing
        await rig.publish(low(1, balance, "10"))
    await rig.received("aliyun", 1)
    await quiet_for(rig)
    assert len(await rig.received("aliyun")) == 1
    # A top-up lifts the balance above the line: the level is re-armed, and told again.
    await rig.publish(
        BalanceChangedV1(
            account_id="A1", balance=Decimal("30"), transaction_id="t1", kind="top_up", at=AT
        )
    )
    await rig.publish(low(1, "9.50", "10"))
    second = await rig.received("aliyun", 2)
    assert [s["params"]["balance"] for s in second] == ["9.00", "9.50"]
    # A balance still under the line does not re-arm it.
    await rig.publish(
        BalanceChangedV1(
            account_id="A1", balance=Decimal("9.9"), transaction_id="t2", kind="top_up", at=AT
        )
    )
    await rig.publish(low(1, "9.00", "10"))
    await quiet_for(rig)
    assert len(await rig.received("aliyun")) == 2


async def test_the_same_message_delivered_twice_sends_once(rig: Rig) -> None:
    await rig.prefer("A1", channels={"top_up_received": ["sms"]})
    await rig.publish(paid("p1"))
    await rig.publish(paid("p1"))  # a new envelope: the bus's dedup does not catch it
    await rig.received("aliyun", 1)
    await quiet_for(rig)
    assert len(await rig.received("aliyun")) == 1
    assert len(await rig.messages()) == 1


async def test_quiet_hours_hold_what_can_wait_and_send_what_cannot(
    sqlite_url: str, bus_prefix: str, tmp_path: Path
) -> None:
    # A quiet window around now, in the site's zone.
    now = datetime.now(ZoneInfo("Asia/Shanghai"))
    start = (now - timedelta(hours=1)).time().replace(second=0, microsecond=0)
    end = (now + timedelta(hours=1)).time().replace(second=0, microsecond=0)
    async with running_rig(
        (sqlite_url, ""),
        bus_prefix,
        tmp_path,
        notifications_quiet_start=start,
        notifications_quiet_end=end,
    ) as rig:
        await rig.prefer("A1", channels={"low_balance_1": ["sms"], "supply_cut": ["sms"]})
        await rig.publish(low(1, "9", "10"))
        await rig.publish(
            RelayRequestedV1(
                request_id="r1", meter_id="M1", account_id="A1", action="trip", reason="x", at=AT
            )
        )
        [cut] = await rig.received("aliyun", 1)
        assert cut["template"] == "SMS_200"  # the cut, at once
        await quiet_for(rig)
        assert len(await rig.received("aliyun")) == 1
        [held] = await rig.messages(kind="low_balance_1")
        assert held["status"] == "pending"
        assert held["attempts"] == 0
        release = datetime.fromisoformat(held["not_before"])
        expected = (now + timedelta(hours=1)).replace(second=0, microsecond=0)
        assert abs((release - expected).total_seconds()) < 1


async def test_preferences_choose_channels_and_opt_out(rig: Rig) -> None:
    await rig.prefer("A1", channels={"top_up_received": ["wechat"]})
    await rig.publish(paid("p1"))
    [wechat] = await rig.received("wechat", 1)
    assert wechat["openid"] == "oTenant_0001"
    await rig.prefer("A1", opted_out=True)
    await rig.publish(paid("p2"))
    await quiet_for(rig)
    assert len(await rig.received("wechat")) == 1
    assert await rig.received("aliyun", 0) == []
    assert len(await rig.messages()) == 1
    # An account nobody gave contacts for is told nothing (and nothing is recorded).
    await rig.publish(
        PaymentSucceededV1(
            payment_id="p3",
            account_id="B2",
            amount=Decimal("5"),
            method="cash",
            reference="p3",
            at=AT,
        )
    )
    await quiet_for(rig)
    assert await rig.messages(recipient="B2") == []


async def test_a_failing_provider_is_retried_with_backoff_until_it_takes_the_message(
    rig: Rig,
) -> None:
    await rig.prefer("A1", channels={"top_up_received": ["sms", "email"]})
    rig.fake.faults["aliyun"] = 2  # throttled twice
    rig.smtp.faults = 1  # one 451
    await rig.publish(paid("p1"))
    await rig.received("aliyun", 1)
    await rig.received("smtp", 1)
    sent = {m["channel"]: m for m in await rig.settled(2)}
    assert sent["sms"]["status"] == "sent"
    assert sent["sms"]["attempts"] == 3
    assert sent["email"]["status"] == "sent"
    assert sent["email"]["attempts"] == 2
    # The back-off (0.1 s, then 0.2 s) separates the attempts: the sent time shows both.
    created = datetime.fromisoformat(sent["sms"]["created_at"])
    assert datetime.fromisoformat(sent["sms"]["sent_at"]) - created >= timedelta(seconds=0.3)


async def test_attempts_run_out_and_the_message_is_failed_with_the_providers_answer(
    rig: Rig,
) -> None:
    await rig.prefer("A1", channels={"top_up_received": ["sms"]})
    rig.fake.faults["aliyun"] = 100
    await rig.publish(paid("p1"))
    [failed] = await rig.settled(1)
    assert failed["status"] == "failed"
    assert failed["attempts"] == 4
    assert "isv.BUSINESS_LIMIT_CONTROL" in failed["provider_answer"]


async def test_a_wrong_key_is_refused_by_the_provider_and_not_retried(
    sqlite_url: str, bus_prefix: str, tmp_path: Path
) -> None:
    async with running_rig((sqlite_url, ""), bus_prefix, tmp_path) as rig:
        sender = rig.service.senders["sms"]
        sender.secret = "not-the-real-secret"  # type: ignore[attr-defined]
        await rig.prefer("A1", channels={"top_up_received": ["sms"]})
        await rig.publish(paid("p1"))
        [failed] = await rig.settled(1)
        assert failed["status"] == "failed"
        assert failed["attempts"] == 1
        assert "SignatureDoesNotMatch" in failed["provider_answer"]
        assert [r["reason"] for r in rig.fake.refused] == ["signature does not match"]
        assert await rig.received("aliyun", 0) == []


async def test_wechat_token_is_kept_until_it_expires_then_renewed(rig: Rig) -> None:
    await rig.prefer("A1", channels={"top_up_received": ["wechat"]})
    await rig.publish(paid("p1"))
    await rig.publish(paid("p2"))
    await rig.received("wechat", 2)
    assert rig.fake.tokens_issued == 1
    rig.fake.expire_tokens()  # WeChat answers 42001 to the old token
    await rig.publish(paid("p3"))
    await rig.received("wechat", 3)
    assert rig.fake.tokens_issued == 2
    assert {m["status"] for m in await rig.settled(3)} == {"sent"}
