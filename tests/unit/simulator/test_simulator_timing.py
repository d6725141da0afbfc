"""The serial-timing model against the field's own figures (field.md)."""

from __future__ import annotations

import pytest
from simulator.timing import SerialLine, read_seconds, rtu_read_bytes


@pytest.mark.parametrize(("registers", "wire_ms"), [(2, 17.7), (40, 96.9), (125, 274.0)])
def test_wire_time_of_fc03_reads_at_9600_8n1(registers: int, wire_ms: float) -> None:
    line = SerialLine(baud=9600, framing="8N1")
    request, response = rtu_read_bytes(registers)
    assert line.wire_seconds(request + response) * 1000 == pytest.approx(wire_ms, abs=0.1)


def test_t35_is_about_4_ms_at_9600_and_fixed_above_19200() -> None:
    assert SerialLine(baud=9600).t35_seconds() * 1000 == pytest.approx(4.01, abs=0.01)
    assert SerialLine(baud=2400).t35_seconds() * 1000 == pytest.approx(16.04, abs=0.01)
    assert SerialLine(baud=38400).t35_seconds() == 0.00175
    assert SerialLine(baud=115200).t35_seconds() == 0.00175


def test_even_parity_costs_an_eleventh_bit() -> None:
    assert SerialLine(baud=2400, framing="8E1").wire_seconds(24) == pytest.approx(0.110)
    assert SerialLine(baud=2400, framing="8N1").wire_seconds(24) == pytest.approx(0.100)


def test_one_exchange_adds_two_gaps_turnaround_and_network() -> None:
    line = SerialLine(baud=9600, turnaround_seconds=0.030, network_rtt_seconds=0.2)
    expected = 17 * 10 / 9600 + 2 * line.t35_seconds() + 0.030 + 0.2
    assert line.exchange_seconds(8, 9) == pytest.approx(expected)
    # A small read lands in the field's 30-60 ms without the network.
    small = SerialLine(baud=9600, turnaround_seconds=0.030).exchange_seconds(8, 9)
    assert 0.030 <= small <= 0.060


def test_silence_holds_the_bus_for_the_request_only() -> None:
    line = SerialLine(baud=9600, turnaround_seconds=0.030)
    assert line.exchange_seconds(8, 0) == pytest.approx(8 * 10 / 9600 + line.t35_seconds())


def test_a_poll_is_the_sum_of_its_reads() -> None:
    line = SerialLine(baud=9600)
    assert read_seconds(line, [22, 2]) == pytest.approx(
        line.exchange_seconds(8, 49) + line.exchange_seconds(8, 9)
    )


@pytest.mark.parametrize(
    "kwargs",
    [{"baud": 0}, {"framing": "7N1"}, {"turnaround_seconds": -1.0}, {"network_rtt_seconds": -1.0}],
)
def test_impossible_lines_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"positive|framing|negative"):
        SerialLine(**kwargs)  # type: ignore[arg-type]
