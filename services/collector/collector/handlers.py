"""The collector's bus message handlers, each one unit of work."""

from __future__ import annotations

from prepaid_common.contracts import CommandRequestV1, Envelope, open_envelope, utcnow
from prepaid_common.outbox import UnitOfWork

from collector import records


async def accept_commands(uow: UnitOfWork, envelopes: list[Envelope]) -> None:
    """Keep a burst of commands in one transaction, in the order they were delivered.

    A mass event (a thousand accounts tripped at once) arrives as a thousand requests; one
    commit each put the last of them tens of seconds behind the first on a loaded database.
    """
    requests = [open_envelope(envelope, CommandRequestV1) for envelope in envelopes]
    await records.accept_commands(uow, requests, at=utcnow())
