"""Tell a dependency that blinked from a message (or request) that is wrong on its own.

A handler that fails because the database or the broker cannot be reached, because a
transaction lost a serialization or deadlock conflict, or because something timed out,
will succeed unchanged once the dependency is back: the consumer waits and tries again
and an API answers 503. Anything else is the message's own fault (a poison message) or a
bug, and goes the bounded way to the dead-letter queue (or a 500).
"""

from __future__ import annotations

import aiormq.exceptions
import asyncpg  # type: ignore[import-untyped]
import httpx
import sqlalchemy.exc

# SQLSTATE classes and codes that name the server's state, not the statement's content:
# connection exceptions (08), insufficient resources (53), operator intervention (57: a
# shutdown, a crash recovery, a cancelled statement), system errors (58), serialization
# failure and deadlock, a lock wait that timed out, and a read-only standby after failover.
_TRANSIENT_SQLSTATE_CLASSES = ("08", "53", "57", "58")
_TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "55P03", "25006"})

_INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # ConnectionError, socket errors and TimeoutError (asyncio's too)
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.DisconnectionError,
    sqlalchemy.exc.TimeoutError,  # no pooled connection came free in time
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    aiormq.exceptions.AMQPConnectionError,
    aiormq.exceptions.ChannelInvalidStateError,
    httpx.TransportError,
)

# How deep to follow __cause__ / __context__: a wrapped driver error is one or two down.
_MAX_CHAIN = 8


def is_infrastructure_failure(error: BaseException) -> bool:
    """Return True when ``error`` comes from an unreachable or busy dependency, not content."""
    seen: set[int] = set()
    pending: list[BaseException] = [error]
    while pending and len(seen) < _MAX_CHAIN:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if _is_transient(current):
            return True
        for linked in (
            current.__cause__,
            current.__context__,
            getattr(current, "orig", None),  # SQLAlchemy's wrapped driver error
        ):
            if isinstance(linked, BaseException):
                pending.append(linked)
    return False


def _is_transient(error: BaseException) -> bool:
    if isinstance(error, _INFRASTRUCTURE_ERRORS):
        return True
    if isinstance(error, sqlalchemy.exc.DBAPIError) and error.connection_invalidated:
        return True
    state = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    if isinstance(state, str) and len(state) == 5:
        return state in _TRANSIENT_SQLSTATES or state[:2] in _TRANSIENT_SQLSTATE_CLASSES
    return False
