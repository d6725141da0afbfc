"""The simulated local-prepaid meter: the purchase block (count + 1 adds, the same count is a
retry, anything else is refused) and its own credit, debited as it measures energy."""

from __future__ import annotations

import struct
from datetime import datetime
from decimal import Decimal

import pytest
from simulator import SimClock, SimulatedMeter, handle_request

START = datetime(2025, 6, 1, 12, 30, 0)
PURCHASE = 0x0030


class FrozenTime:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make_meter(*, count: int = 4, credit: str = "10.00") -> tuple[SimulatedMeter, FrozenTime]:
    time = FrozenTime()
    meter = SimulatedMeter(
        meter_id="DTU0001-01",
        unit_id=1,
        profile="reference-prepaid",
        base_load_kw=3.0,
        clock=SimClock(start=START, monotonic=time),
        initial_energy_kwh=1234.56,
    )
    meter.purchase_count = count
    meter.local_credit = Decimal(credit)
    return meter, time


def purchase(fen: int, count: int) -> bytes:
    """One FC16 request of the purchase block: INT32 amount (fen), UINT16 count."""
    high, low = divmod(fen & 0xFFFFFFFF, 0x10000)
    return struct.pack(">BHHB3H", 0x10, PURCHASE, 3, 6, high, low, count)


def shown(meter: SimulatedMeter) -> tuple[int, int]:
    """(credit in fen, purchase count) as the registers show them."""
    reply = handle_request(meter, struct.pack(">BHH", 0x03, 0x0012, 3))
    high, low, count = struct.unpack(">3H", reply[2:])
    return struct.unpack(">i", struct.pack(">HH", high, low))[0], count


def test_the_next_count_adds_the_amount_and_takes_the_count() -> None:
    meter, _time = make_meter(count=4, credit="10.00")
    request = purchase(5000, 5)
    assert handle_request(meter, request) == request[:5]
    assert shown(meter) == (6000, 5)


def test_the_same_count_again_is_a_retry_that_adds_nothing() -> None:
    meter, _time = make_meter(count=4, credit="10.00")
    handle_request(meter, purchase(5000, 5))
    again = purchase(5000, 5)
    assert handle_request(meter, again) == again[:5]  # success, as the first time
    assert shown(meter) == (6000, 5)


@pytest.mark.parametrize("count", [3, 6, 7, 0, 0xFFFF])
def test_any_other_count_is_refused_with_exception_03(count: int) -> None:
    meter, _time = make_meter(count=4, credit="10.00")
    assert handle_request(meter, purchase(5000, count)) == bytes([0x90, 0x03])
    assert shown(meter) == (1000, 4)


@pytest.mark.parametrize("fen", [0, -100])
def test_an_amount_of_zero_or_less_is_refused(fen: int) -> None:
    meter, _time = make_meter(count=4)
    assert handle_request(meter, purchase(fen, 5)) == bytes([0x90, 0x03])
    assert meter.purchase_count == 4


def test_a_purchase_is_written_whole() -> None:
    meter, _time = make_meter(count=4)
    partial = struct.pack(">BHHB2H", 0x10, PURCHASE, 2, 4, 0, 5000)
    assert handle_request(meter, partial) == bytes([0x90, 0x03])
    count_only = struct.pack(">BHHBH", 0x10, PURCHASE + 2, 1, 2, 5)
    assert handle_request(meter, count_only) == bytes([0x90, 0x03])
    assert handle_request(meter, struct.pack(">BHH", 0x06, PURCHASE + 2, 5)) == bytes([0x86, 0x03])
    assert shown(meter) == (1000, 4)


def test_credit_is_debited_at_the_local_price_and_the_relay_opens_at_zero() -> None:
    meter, time = make_meter(credit="2.00")
    meter.local_price = Decimal("1.0000")
    energy = meter.energy_kwh()
    time.now += 600  # 3 kW for 10 minutes: about 0.5 kWh
    used = meter.energy_kwh() - energy
    assert used > 0
    assert meter.local_credit == pytest.approx(Decimal("2.00") - Decimal(repr(used)))
    assert meter.relay == "closed"
    time.now += 3600  # 3 kWh more than 2 yuan buys
    assert meter.relay == "open"
    assert meter.local_credit <= 0
    credit_fen, _count = shown(meter)
    assert credit_fen < 0  # shown below zero: the meter overshot between two looks
    stopped = meter.energy_kwh()
    time.now += 3600
    assert meter.energy_kwh() == stopped  # cut: nothing more is measured or debited


def test_a_purchase_restores_a_meter_that_cut_itself() -> None:
    meter, time = make_meter(count=4, credit="0.10")
    meter.local_price = Decimal("1.0000")
    time.now += 3600
    assert meter.relay == "open"
    handle_request(meter, purchase(5000, 5))
    assert meter.relay == "closed"
    assert meter.local_credit > 0


def test_a_purchase_does_not_undo_a_trip_command() -> None:
    meter, _time = make_meter(count=4, credit="0.00")
    meter.local_price = Decimal("1.0000")
    meter.relay = "open"  # tripped by a command, not for want of credit
    handle_request(meter, purchase(5000, 5))
    assert meter.relay == "open"


def test_without_a_local_price_the_credit_stays_put() -> None:
    meter, time = make_meter(credit="3.00")
    time.now += 3600
    assert meter.local_credit == Decimal("3.00")
    assert meter.relay == "closed"
