"""The port DTUs in client mode dial: identify each by its registration packet, hand it over.

A 4G DTU has no public address, so it connects to us and names itself first (``LOGIN:<id>``
by default). The listener reads until the bytes are a known registration, then gives the
connection to that DTU's bus loop; a DTU that reconnects while its old socket still looks
open gets the new one (the old one is closed). An unknown or silent caller is logged and
hung up on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from collector.domain.stream import identify
from collector.metrics import DIAL_INS

log = logging.getLogger(__name__)

# (reader, writer, bytes received so far, DTU id) -> True if a bus loop took it.
Handover = Callable[[asyncio.StreamReader, asyncio.StreamWriter, bytes, str], Awaitable[bool]]
Registrations = Callable[[], Awaitable[dict[bytes, str]]]

MAX_REGISTRATION_BYTES = 256
REGISTRATION_SETTLE_SECONDS = 0.3


class DtuListener:
    """A TCP server for dial-in DTUs."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        registrations: Registrations,
        handover: Handover,
        identify_timeout: float = 10.0,
    ) -> None:
        self.host = host
        self.port = port
        self._registrations = registrations
        self._handover = handover
        self._identify_timeout = identify_timeout
        self._server: asyncio.Server | None = None
        self._pending: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        """Listen; with port 0 the system picks one (see ``port`` afterwards)."""
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("listening for DTUs", extra={"host": self.host, "port": self.port})

    async def stop(self) -> None:
        """Stop accepting and hang up on callers not yet identified."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._pending):
            writer.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        self._pending.add(writer)
        try:
            outcome = await self._identify_and_hand_over(reader, writer)
        except (OSError, asyncio.IncompleteReadError):
            outcome = "silent"
        finally:
            self._pending.discard(writer)
        DIAL_INS.labels(outcome).inc()
        if outcome != "attached":
            log.warning("DTU connection refused", extra={"peer": str(peer), "reason": outcome})
            writer.close()

    async def _identify_and_hand_over(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> str:
        received = b""
        known = await self._registrations()
        deadline = asyncio.get_running_loop().time() + self._identify_timeout
        while True:
            dtu_id, decided = identify(received, known)
            if decided or len(received) > MAX_REGISTRATION_BYTES:
                break
            # A registration that matches but could still grow gets a short wait only: a
            # DTU in "once" mode sends nothing more until asked.
            wait = deadline - asyncio.get_running_loop().time()
            if dtu_id is not None:
                wait = min(wait, REGISTRATION_SETTLE_SECONDS)
            try:
                async with asyncio.timeout(max(wait, 0)):
                    chunk = await reader.read(MAX_REGISTRATION_BYTES)
            except TimeoutError:
                if dtu_id is not None:
                    break
                return "silent"
            if not chunk:
                return "silent"
            received += chunk
        if dtu_id is None:
            # Registered a moment ago, perhaps: look once more before refusing.
            dtu_id, _decided = identify(received, await self._registrations())
        if dtu_id is None:
            log.warning("unknown DTU registration", extra={"registration": received[:80].hex(" ")})
            return "unknown"
        # The registration stays in front: the link's stream drops it where a frame would start.
        if not await self._handover(reader, writer, received, dtu_id):
            return "unknown"
        log.info("DTU connected", extra={"dtu_id": dtu_id})
        return "attached"
