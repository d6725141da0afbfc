"""The collector's bus message handlers, each one unit of work."""

from __future__ import annotations

from prepaid_common.contracts import CommandRequestV1, Envelope, open_envelope, utcnow
from prepaid_common.outbox import UnitOfWork

from collector import records


async def accept_command(uow: UnitOfWork, envelope: Envelope) -> None:
    """Keep a command for one of our meters until its DTU's bus loop executes it."""
    request = open_envelope(envelope, CommandRequestV1)
    await records.accept_command(uow, request, at=utcnow())
