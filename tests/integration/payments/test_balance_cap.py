"""The anti-hoarding cap, atomically (issue 11, item 7), through the public API of the
product on both backends: racing counter top-ups never lift a balance above its cap (each
refused before the cash is taken), a receipt replayed near the cap answers as the first
time did, and a provider payment above the cap is credited and flagged."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import httpx
from testkit import wait_until

from .conftest import product_on_a_socket, signed_in

CAP = Decimal("100.00")


async def _open_capped_account(api: httpx.AsyncClient, account_id: str) -> None:
    answer = await api.post(
        "/api/v1/accounts",
        json={
            "id": account_id,
            "name": "Capped tenant",
            "price_per_kwh": "0.6000",
            "balance_cap": str(CAP),
        },
    )
    assert answer.status_code == 201, answer.text


async def _balance(api: httpx.AsyncClient, account_id: str) -> Decimal:
    return Decimal((await api.get(f"/api/v1/accounts/{account_id}")).json()["balance"])


async def test_the_cap_holds_for_racing_counter_top_ups_and_replays_answer_alike(
    backend: tuple[str, str], bus_prefix: str, tmp_path: Path
) -> None:
    async with (
        product_on_a_socket(backend, bus_prefix, tmp_path, demo_data=False) as (_, url),
        signed_in(url) as api,
    ):
        await _open_capped_account(api, "CAP-1")
        answers = await asyncio.gather(
            *(
                api.post(
                    "/api/v1/accounts/CAP-1/top-ups",
                    json={"amount": "30.00", "receipt": f"RACE-{n}"},
                )
                for n in range(10)
            )
        )
        statuses = sorted(answer.status_code for answer in answers)
        # 3 x 30.00 fit under 100.00; the 7 others are refused before the cash is taken.
        assert statuses == [201] * 3 + [409] * 7, [a.text for a in answers]

        async def credited() -> bool:
            return await _balance(api, "CAP-1") == Decimal("90.00")

        await wait_until(credited, timeout=30)
        payments = (await api.get("/api/v1/accounts/CAP-1/payments")).json()["items"]
        assert len(payments) == 3
        # A receipt already credited, replayed near the cap, answers as the first time did.
        accepted = next(a for a in answers if a.status_code == 201).json()
        replay = await api.post(
            "/api/v1/accounts/CAP-1/top-ups",
            json={"amount": "30.00", "receipt": accepted["reference"]},
        )
        assert replay.status_code == 200, replay.text
        assert replay.json()["id"] == accepted["id"]
        assert replay.json()["replayed"] is True
        # The same receipt for another amount is still a conflict.
        other = await api.post(
            "/api/v1/accounts/CAP-1/top-ups",
            json={"amount": "5.00", "receipt": accepted["reference"]},
        )
        assert other.status_code == 409
        # 10.00 more fits exactly; a cent more does not.
        assert (
            await api.post(
                "/api/v1/accounts/CAP-1/top-ups", json={"amount": "10.01", "receipt": "LAST-1"}
            )
        ).status_code == 409
        assert (
            await api.post(
                "/api/v1/accounts/CAP-1/top-ups", json={"amount": "10.00", "receipt": "LAST-2"}
            )
        ).status_code == 201
        await asyncio.sleep(0.5)
        assert await _balance(api, "CAP-1") <= CAP


async def test_a_provider_payment_above_the_cap_is_credited_and_flagged(
    backend: tuple[str, str], bus_prefix: str, tmp_path: Path
) -> None:
    async with (
        product_on_a_socket(backend, bus_prefix, tmp_path, demo_data=False) as (product, url),
        signed_in(url) as api,
        httpx.AsyncClient(timeout=30) as phone,
    ):
        await _open_capped_account(api, "CAP-2")
        # The order fits when it is made; cash taken meanwhile fills the account.
        order = await api.post(
            "/api/v1/accounts/CAP-2/orders", json={"channel": "wechat_native", "amount": "50.00"}
        )
        assert order.status_code == 201, order.text
        cash = await api.post(
            "/api/v1/accounts/CAP-2/top-ups", json={"amount": "90.00", "receipt": "CASH-1"}
        )
        assert cash.status_code == 201, cash.text
        assert (await phone.get(order.json()["code_url"])).status_code == 200

        async def credited() -> bool:
            return await _balance(api, "CAP-2") == Decimal("140.00")

        # The money was taken: it is credited, above the cap, and an operator is told.
        await wait_until(credited, timeout=30)
        anomalies = (await api.get("/api/v1/anomalies")).json()["items"]
        assert any(a["kind"] == "balance_cap_exceeded" for a in anomalies), anomalies
        assert product.demo_payments is not None
