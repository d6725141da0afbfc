"""The Modbus TCP adapter: one connection to one DTU, one request in flight."""

from __future__ import annotations

from collections.abc import Awaitable

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.pdu import ModbusPDU

from collector.domain.planning import ReadBlock


class LinkDown(Exception):
    """The TCP connection to the DTU could not be opened or broke."""


class MeterSilent(Exception):
    """No (usable) reply from the meter in time."""


class MeterRefused(Exception):
    """The meter answered with a Modbus exception."""

    def __init__(self, code: int) -> None:
        super().__init__(f"meter answered exception {code:#04x}")
        self.code = code


class ModbusLink:
    """A pymodbus client to one DTU; reconnection is the caller's decision, not pymodbus's."""

    def __init__(self, host: str, port: int, *, timeout: float) -> None:
        self.host = host
        self.port = port
        # Built lazily: a pymodbus client must be created inside the running loop.
        self._client: AsyncModbusTcpClient | None = None
        self._timeout = timeout

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
        words = list(response.registers)
        if len(words) != block.count:
            raise MeterSilent(f"asked for {block.count} registers, got {len(words)}")
        return words

    async def write(self, unit_id: int, address: int, value: int) -> None:
        """Write one holding register (function 06)."""
        client = self._require()
        await self._call(client.write_register(address, value, device_id=unit_id))

    def _require(self) -> AsyncModbusTcpClient:
        if not self.connected or self._client is None:
            raise LinkDown("not connected")
        return self._client

    async def _call(self, request: Awaitable[ModbusPDU]) -> ModbusPDU:
        try:
            response = await request
        except ConnectionException as error:
            raise LinkDown(str(error)) from None
        except ModbusIOException:
            raise MeterSilent("no reply") from None
        except ModbusException as error:
            raise MeterSilent(f"unusable reply: {error}") from None
        except OSError as error:
            raise LinkDown(str(error)) from None
        if response.isError():
            raise MeterRefused(response.exception_code)
        return response
