"""The lean batch consumer reads deliveries however the broker's bytes are cut, and acks
nothing on a link that has closed."""

from __future__ import annotations

import asyncio
import random
from struct import pack

from pamqp import commands, frame, heartbeat
from pamqp.body import ContentBody
from pamqp.header import ContentHeader
from prepaid_common.bus.amqp_consumer import ConsumerLink, Delivery


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True


def delivery_frames(tag: int, body: bytes, frame_max: int = 4096) -> bytes:
    out = frame.marshal(
        commands.Basic.Deliver(
            consumer_tag="ctag-1", delivery_tag=tag, exchange="x", routing_key="k.1"
        ),
        1,
    )
    out += frame.marshal(ContentHeader(body_size=len(body)), 1)
    for start in range(0, len(body), frame_max):
        out += frame.marshal(ContentBody(body[start : start + frame_max]), 1)
    return out


async def open_link() -> tuple[ConsumerLink, list[Delivery], FakeTransport]:
    got: list[Delivery] = []
    link = ConsumerLink("amqp://u:p@localhost:5672/", "q", 10, got.append)
    transport = FakeTransport()
    link.connection_made(transport)
    link.data_received(frame.marshal(commands.Basic.ConsumeOk(consumer_tag="ctag-1"), 1))
    assert link.is_open
    return link, got, transport


async def test_deliveries_are_read_whatever_the_cuts() -> None:
    link, got, _ = await open_link()
    bodies = [b"", b"x", b"{" + b"a" * 10_000 + b"}", bytes(range(256)) * 3]
    stream = b"".join(
        delivery_frames(tag, body) + heartbeat.Heartbeat.value
        for tag, body in enumerate(bodies, start=1)
    )
    cuts = sorted(random.Random(7).sample(range(1, len(stream)), 60))
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        link.data_received(stream[start:end])
    assert [(d.delivery_tag, d.body) for d in got] == list(enumerate(bodies, start=1))
    # One byte at a time as well.
    got.clear()
    for byte in delivery_frames(99, b"late"):
        link.data_received(bytes([byte]))
    assert [(d.delivery_tag, d.body) for d in got] == [(99, b"late")]


async def test_acks_go_out_while_open_and_not_after_the_broker_closes() -> None:
    link, _, transport = await open_link()
    transport.written.clear()
    assert link.ack(5, multiple=True)
    assert transport.written == [
        frame.marshal(commands.Basic.Ack(delivery_tag=5, multiple=True), 1)
    ]
    link.data_received(
        frame.marshal(
            commands.Connection.Close(
                reply_code=320, reply_text="CONNECTION_FORCED", class_id=0, method_id=0
            ),
            0,
        )
    )
    assert not link.is_open
    assert link.closed.done()
    transport.written.clear()
    assert not link.ack(6)
    assert not link.reject(6, requeue=True)
    assert transport.written == []


async def test_a_malformed_frame_drops_the_link() -> None:
    link, got, transport = await open_link()
    bad = bytearray(delivery_frames(1, b"body"))
    bad[-1] = 0x00  # not the frame end octet
    link.data_received(bytes(bad))
    assert got == []
    assert link.closed.done()
    assert not link.is_open
    assert transport.closing


def test_ack_frame_is_what_pamqp_writes() -> None:
    """The ack is packed by hand on the hot path; it must be the standard frame."""
    packed = pack(">BHIHHQB", 1, 1, 13, 60, 80, 123456789, 1) + b"\xce"
    assert packed == frame.marshal(commands.Basic.Ack(delivery_tag=123456789, multiple=True), 1)
