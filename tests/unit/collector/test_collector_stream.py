"""A DTU's byte stream: registrations and heartbeats leave before frames are decoded."""

from __future__ import annotations

from collector.domain.stream import InboundStream, identify


def test_heartbeats_and_a_registration_are_dropped_at_frame_starts() -> None:
    stream = InboundStream(registration=b"LOGIN:D1")
    stream.feed(b"LOGIN:D1HBH")
    assert bytes(stream.buffer) == b"H"
    assert stream.awaiting_token
    stream.feed(b"B\x01\x03")
    assert bytes(stream.buffer) == b"\x01\x03"
    assert stream.heartbeats == 2
    assert not stream.awaiting_token
    # Inside a frame the same bytes are data.
    stream.feed(b"HB")
    assert bytes(stream.buffer) == b"\x01\x03HB"
    stream.consume(2)
    assert bytes(stream.buffer) == b""


def test_prefix_mode_strips_the_registration_from_every_packet() -> None:
    stream = InboundStream(registration=b"LOGIN:D1", mode="prefix")
    stream.feed(b"LOGIN:D1\x01\x03\x04")
    stream.feed(b"LOGIN:D1\x00\x01")
    assert bytes(stream.buffer) == b"\x01\x03\x04\x00\x01"


def test_identify_waits_for_a_whole_registration() -> None:
    known = {b"LOGIN:D1": "D1", b"LOGIN:D10": "D10"}
    assert identify(b"LOG", known) == (None, False)
    assert identify(b"LOGIN:D10", known) == ("D10", True)
    assert identify(b"LOGIN:D1", known) == ("D1", False)  # may be the start of D10's
    assert identify(b"LOGIN:D1\x01", known) == ("D1", True)
    assert identify(b"HELLO", known) == (None, True)
