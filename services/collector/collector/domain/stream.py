"""The byte stream from a DTU in client mode, cleaned of registrations and heartbeats.

A DTU sends its registration packet on connect (or before every packet) and a heartbeat
when idle, in the same stream as the meters' replies. Both are dropped only where a frame
would start: no Modbus reply we ask for begins with ``HB`` or ``LOGIN:`` (function codes
0x42 and 0x4F are never requested) and DL/T 645 frames begin with ``FE`` or ``68``.
"""

from __future__ import annotations

from dataclasses import dataclass

from prepaid_common.contracts.api.collector import RegistrationMode

DEFAULT_HEARTBEAT = b"HB"


@dataclass
class InboundStream:
    """Bytes received from one DTU, with registrations and heartbeats taken out."""

    registration: bytes
    mode: RegistrationMode = "once"
    heartbeat: bytes = DEFAULT_HEARTBEAT

    def __post_init__(self) -> None:
        self.buffer = bytearray()
        self.heartbeats = 0
        # A packet that starts with the heartbeat is one even inside a frame.
        self.heartbeat_inside_frames = False

    def feed(self, chunk: bytes) -> None:
        """Add what the socket delivered."""
        if self.mode == "prefix" and chunk.startswith(self.registration):
            # In prefix mode each packet carries it, even one that continues a frame.
            chunk = chunk[len(self.registration) :]
        if (
            self.heartbeat_inside_frames
            and self.buffer
            and self.heartbeat
            and chunk.startswith(self.heartbeat)
        ):
            # A DTU sends its heartbeat as a packet of its own, also between two pieces of
            # one reply (its idle timer runs while the meter is still answering). Only
            # where a checksum would catch a wrong cut: the link turns this on for DL/T 645.
            chunk = chunk[len(self.heartbeat) :]
            self.heartbeats += 1
        self.buffer += chunk
        self._strip()

    def consume(self, used: int) -> None:
        """Drop a decoded frame from the front."""
        del self.buffer[:used]
        self._strip()

    @property
    def awaiting_token(self) -> bool:
        """True while the buffer is only the start of a registration or heartbeat."""
        pending = bytes(self.buffer)
        return any(
            token.startswith(pending) and len(pending) < len(token)
            for token in (self.registration, self.heartbeat)
            if token
        )

    def clear(self) -> None:
        """Forget everything pending (stale replies before a new request)."""
        self.buffer.clear()

    def _strip(self) -> None:
        # Tokens are only recognised where a frame would start; a partial token waits.
        while self.buffer:
            for token in (self.registration, self.heartbeat):
                if token and self.buffer.startswith(token):
                    del self.buffer[: len(token)]
                    if token == self.heartbeat:
                        self.heartbeats += 1
                    break
            else:
                return


def identify(buffer: bytes, registrations: dict[bytes, str]) -> tuple[str | None, bool]:
    """Return (DTU id, decided): the longest registration the stream starts with, if any.

    ``decided`` is False while the bytes so far could still grow into a (longer)
    registration: ``LOGIN:D1`` may be the start of ``LOGIN:D10`` split across packets.
    """
    found = None
    for token in sorted(registrations, key=len, reverse=True):
        if buffer.startswith(token):
            found = registrations[token]
            break
    longer_possible = any(
        token.startswith(buffer) and len(token) > len(buffer) for token in registrations
    )
    return found, not longer_possible
