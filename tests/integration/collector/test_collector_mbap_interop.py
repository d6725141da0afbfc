"""The collector's own MBAP link against an independent Modbus TCP server (pymodbus's).

The link frames requests itself; a server written by others must understand them and its
replies must decode: reads (03 and 04), a write (06), a write of several (16), and the
exception a unit the server does not serve answers with.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import pytest
from collector.domain.planning import ReadBlock
from collector.links import MeterRefused
from collector.modbus import ModbusLink
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
async def pymodbus_gateway() -> AsyncIterator[int]:
    port = free_port()
    device = SimDevice(
        7, simdata=[SimData(0, 40, [100 + n for n in range(40)], datatype=DataType.REGISTERS)]
    )
    server = ModbusTcpServer(device, address=("127.0.0.1", port))
    task = asyncio.create_task(server.serve_forever())
    for _ in range(200):  # until it listens
        try:
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.02)
            continue
        writer.close()
        break
    yield port
    await server.shutdown()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_pymodbus_understands_the_link_and_the_link_its_replies(
    pymodbus_gateway: int,
) -> None:
    link = ModbusLink("127.0.0.1", pymodbus_gateway, timeout=2.0)
    await link.connect()
    try:
        assert await link.read(7, 3, ReadBlock(0, 21)) == [100 + n for n in range(21)]
        assert await link.read(7, 4, ReadBlock(10, 2)) == [110, 111]
        await link.write(7, 0x11, 0x1A)
        await link.write_many(7, 0x20, [2026, 11, 27])
        assert await link.read(7, 3, ReadBlock(0x11, 1)) == [0x1A]
        assert await link.read(7, 3, ReadBlock(0x20, 3)) == [2026, 11, 27]
        with pytest.raises(MeterRefused) as refused:
            await link.read(9, 3, ReadBlock(0, 2))  # a unit the server does not serve
        assert refused.value.code == 4
        # Many requests in a row keep their transaction ids straight.
        for n in range(50):
            assert await link.read(7, 3, ReadBlock(n % 10, 1)) == [100 + n % 10]
    finally:
        link.close()
