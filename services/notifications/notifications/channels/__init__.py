"""The channels' adapters: each sends one rendered message to one address and returns the
provider's answer, or raises ``ChannelFailure`` saying whether trying again may help."""

from __future__ import annotations

from typing import Protocol

from notifications.domain.kinds import Channel
from notifications.domain.texts import Rendered


class ChannelFailure(Exception):
    """A provider refused or could not be reached; ``answer`` is what it said."""

    def __init__(self, answer: str, *, retryable: bool) -> None:
        super().__init__(answer)
        self.answer = answer[:1000]
        self.retryable = retryable


class Sender(Protocol):
    """One provider behind one channel."""

    channel: Channel
    provider: str

    async def send(self, address: str, rendered: Rendered) -> str:
        """Send; return the provider's answer (its message or request id)."""
        ...

    async def aclose(self) -> None: ...
