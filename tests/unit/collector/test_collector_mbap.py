"""MBAP framing: frames split anywhere in the stream come out whole; garbage is refused."""

from __future__ import annotations

import pytest
from collector.domain import mbap
from hypothesis import given
from hypothesis import strategies as st


@given(
    replies=st.lists(
        st.tuples(
            st.integers(0, 0xFFFF),
            st.integers(0, 247),
            st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=125),
        ),
        min_size=1,
        max_size=5,
    ),
    cuts=st.lists(st.integers(1, 40), max_size=30),
)
def test_frames_split_anywhere_come_out_whole_and_in_order(
    replies: list[tuple[int, int, list[int]]], cuts: list[int]
) -> None:
    frames = [
        mbap.frame(
            t, unit, bytes((3, 2 * len(words))) + b"".join(w.to_bytes(2, "big") for w in words)
        )
        for t, unit, words in replies
    ]
    stream = b"".join(frames)
    buffer = bytearray()
    got: list[bytes] = []
    position = 0
    for cut in [*cuts, len(stream)]:
        buffer += stream[position : position + cut]
        position += cut
        while (whole := mbap.take_frame(buffer)) is not None:
            got.append(whole)
    assert got == frames
    for whole, (transaction, unit, words) in zip(got, replies, strict=True):
        assert mbap.transaction_of(whole) == transaction
        assert mbap.unit_of(whole) == unit
        assert mbap.read_reply(mbap.pdu_of(whole), function=3, count=len(words)) == words


def test_a_header_that_is_not_mbap_is_garbled() -> None:
    with pytest.raises(mbap.Garbled):
        mbap.take_frame(bytearray(b"\x00\x01\x00\x07\x00\x05\x01\x03\x02\x00\x01"))  # protocol 7
    with pytest.raises(mbap.Garbled):
        mbap.take_frame(bytearray(b"\x00\x01\x00\x00\x01\x00\x01"))  # length 256


@pytest.mark.parametrize(
    ("pdu", "count"),
    [
        (b"\x04\x02\x00\x01", 1),  # another function
        (b"\x03\x04\x00\x01", 2),  # byte count says 4, two bytes follow
        (b"\x03\x02\x00\x01\x00\x02", 1),  # one register too many
        (b"\x03\x02\x00\x01", 2),  # asked for two
    ],
)
def test_a_read_reply_must_hold_exactly_what_was_asked(pdu: bytes, count: int) -> None:
    with pytest.raises(mbap.Garbled):
        mbap.read_reply(pdu, function=3, count=count)


def test_requests_are_the_standard_pdus() -> None:
    assert mbap.read_request(3, 0x0010, 2) == bytes.fromhex("0300100002")
    assert mbap.write_request(0x0011, 0x001A) == bytes.fromhex("060011001a")
    assert mbap.write_many_request(0x0020, [2026, 11]) == bytes.fromhex(
        "1000200002040 7ea000b".replace(" ", "")
    )
    assert mbap.frame(1, 7, b"\x03\x00\x00\x00\x16") == bytes.fromhex(
        "0001000000060703000000 16".replace(" ", "")
    )
    with pytest.raises(ValueError, match="cannot read"):
        mbap.read_request(3, 0, 126)
