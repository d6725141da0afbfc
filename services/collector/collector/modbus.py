"""The Modbus TCP gateway adapter (MBAP): one connection to one DTU, one request in flight."""

from __future__ import annotations

from collections.abc import Awaitable

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.pdu import ModbusPDU

from collector.domain import dlt645
from collector.domain.planning import ReadBlock
from collector.links import LinkDown, MeterGarbled, MeterRefused, MeterSilent, RequestGap

__all__ = ["LinkDown", "MeterRefused", "MeterSilent", "ModbusLink"]


class ModbusLink:
    """A pymodbus client to one gateway; reconnection is the caller's decision, not pymodbus's."""

    def __init__(self, host: str, port: int, *, timeout: float, gap: float = 0.0) -> None:
        self.host = host
        self.port = port
        self.dial_to = (host, port)
        # Built lazily: a pymodbus client must be created inside the running loop.
        self._client: AsyncModbusTcpClient | None = None
        self._timeout = timeout
        self._gap = RequestGap(gap)

    @property
    def connected(self) -> bool:
        return self._client is not None and bool(self._client.connected)

    async def connect(self) -> None:
        """Open the connection; raise LinkDown if the DTU cannot be reached."""
        if self.connected:
            return
        self.close()
        self._client = AsyncModbusTcpClient(
            self.host, port=self.port, timeout=self._timeout, retries=0, reconnect_delay=0
        )
        try:
            connected = await self._client.connect()
        except OSError as error:
            self.close()
            raise LinkDown(f"cannot connect to {self.host}:{self.port}: {error}") from None
        if not connected:
            self.close()
            raise LinkDown(f"cannot connect to {self.host}:{self.port}")

    def close(self) -> None:
        """Close the connection (idempotent)."""
        client, self._client = self._client, None
        if client is not None:
            client.close()

    async def read(self, unit_id: int, function: int, block: ReadBlock) -> list[int]:
        """Read one block of holding (03) or input (04) registers."""
        client = self._require()
        call = client.read_holding_registers if function == 3 else client.read_input_registers
        response = await self._call(call(block.address, count=block.count, device_id=unit_id))
        if response.dev_id != unit_id:
            # pymodbus refuses this itself today; a neighbour's registers must never pass.
            raise MeterGarbled(f"reply from unit {response.dev_id}, asked {unit_id}")
        words = list(response.registers)
        if len(words) != block.count:
            raise MeterSilent(f"asked for {block.count} registers, got {len(words)}")
        return words

    async def write(self, unit_id: int, address: int, value: int) -> None:
        """Write one holding register (function 06)."""
        client = self._require()
        await self._call(client.write_register(address, value, device_id=unit_id))

    async def write_many(self, unit_id: int, address: int, values: list[int]) -> None:
        """Write consecutive holding registers (function 16)."""
        client = self._require()
        await self._call(client.write_registers(address, values, device_id=unit_id))

    async def dlt645(self, frame: bytes, *, reply: bool = True) -> dlt645.Frame | None:
        """A gateway converts MBAP to RTU: it cannot carry DL/T 645 (registration refuses it)."""
        raise MeterSilent("DL/T 645 needs a transparent link, not a Modbus TCP gateway")

    def _require(self) -> AsyncModbusTcpClient:
        if not self.connected or self._client is None:
            raise LinkDown("not connected")
        return self._client

    async def _call(self, request: Awaitable[ModbusPDU]) -> ModbusPDU:
        await self._gap.wait()
        try:
            response = await request
        except ConnectionException as error:
            raise LinkDown(str(error)) from None
        except ModbusIOException as error:
            if "but received" in str(error):  # another unit or transaction answered
                raise MeterGarbled(f"garbled reply: {error}") from None
            raise MeterSilent("no reply") from None
        except ModbusException as error:
            raise MeterSilent(f"unusable reply: {error}") from None
        except OSError as error:
            raise LinkDown(str(error)) from None
        finally:
            self._gap.done()
        if response.isError():
            raise MeterRefused(response.exception_code)
        return response
