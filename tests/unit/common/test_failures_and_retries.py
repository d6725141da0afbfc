"""An outage is waited out, a poison message is not: the classification and the retry loop."""

from __future__ import annotations

import asyncio

import aiormq.exceptions
import asyncpg
import httpx
import pytest
import sqlalchemy.exc
from prepaid_common.bus.amqp_consumer import AmqpLinkClosed
from prepaid_common.bus.retrying import Outage, Outcome, RetryPolicy, handle_with_retries
from prepaid_common.failures import is_infrastructure_failure


class DriverError(Exception):
    """What SQLAlchemy's asyncpg adapter wraps: an error carrying a SQLSTATE."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def wrapped(sqlstate: str) -> sqlalchemy.exc.DBAPIError:
    return sqlalchemy.exc.DBAPIError("UPDATE ...", {}, DriverError(sqlstate))


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(111, "refused"),
        TimeoutError(),
        OSError("network unreachable"),
        sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("server closed")),
        sqlalchemy.exc.InterfaceError("SELECT 1", {}, Exception("connection is closed")),
        sqlalchemy.exc.TimeoutError("QueuePool limit reached"),
        sqlalchemy.exc.DBAPIError("SELECT 1", {}, Exception("gone"), connection_invalidated=True),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.AdminShutdownError("terminating connection"),
        asyncpg.exceptions.SerializationError("could not serialize access"),
        asyncpg.exceptions.DeadlockDetectedError("deadlock detected"),
        wrapped("40001"),
        wrapped("40P01"),
        wrapped("08006"),
        wrapped("57P01"),
        aiormq.exceptions.AMQPConnectionError("broker gone"),
        aiormq.exceptions.ChannelInvalidStateError("channel closed"),
        AmqpLinkClosed("connection lost"),
        httpx.ConnectError("refused"),
    ],
    ids=repr,
)
def test_a_dependency_that_is_down_is_infrastructure(error: BaseException) -> None:
    assert is_infrastructure_failure(error)


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError("poison"),
        ValueError("bad amount"),
        KeyError("meter_id"),
        sqlalchemy.exc.IntegrityError("INSERT", {}, DriverError("23505")),
        wrapped("22003"),  # numeric value out of range: the content's fault
        wrapped("42P01"),  # undefined table on PostgreSQL: a bug, not an outage
        asyncpg.exceptions.UniqueViolationError("duplicate key"),
    ],
    ids=repr,
)
def test_a_message_failing_on_its_content_is_not(error: BaseException) -> None:
    assert not is_infrastructure_failure(error)


def test_a_cause_down_the_chain_counts() -> None:
    error = RuntimeError("unit of work failed")
    error.__cause__ = ConnectionResetError("peer reset")
    assert is_infrastructure_failure(error)


def test_a_chain_that_loops_ends() -> None:
    first, second = RuntimeError("a"), RuntimeError("b")
    first.__context__, second.__context__ = second, first
    assert not is_infrastructure_failure(first)


FAST = RetryPolicy(poison_delays=(0.0, 0.0), outage_first_delay=0.001, outage_max_delay=0.004)


async def test_an_outage_is_waited_out_however_long_it_lasts() -> None:
    calls = 0

    async def handle() -> None:
        nonlocal calls
        calls += 1
        if calls <= 20:  # many more than the poison budget
            raise ConnectionRefusedError(111, "refused")

    outage = Outage("q")
    outcome = await handle_with_retries(handle, outage=outage, policy=FAST, describe="m1")
    assert outcome is Outcome.HANDLED
    assert calls == 21
    assert not outage.ongoing


async def test_an_outage_is_logged_once_when_it_starts_and_once_when_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = 0

    async def handle() -> None:
        nonlocal calls
        calls += 1
        if calls <= 5:
            raise TimeoutError()

    await handle_with_retries(handle, outage=Outage("q"), policy=FAST, describe="m1")
    messages = [record.getMessage() for record in caplog.records]
    assert sum("dependency unavailable" in m for m in messages) == 1
    assert sum("dependency back" in m for m in messages) == 1


async def test_a_poison_message_gets_bounded_delayed_attempts() -> None:
    calls = 0

    async def handle() -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("poison")

    policy = RetryPolicy(poison_delays=(0.02, 0.04))
    loop = asyncio.get_running_loop()
    started = loop.time()
    outcome = await handle_with_retries(handle, outage=Outage("q"), policy=policy, describe="m")
    assert outcome is Outcome.POISON
    assert calls == 3  # one attempt, then one after each delay
    assert loop.time() - started >= 0.06


async def test_an_outage_does_not_spend_the_poison_budget() -> None:
    errors: list[Exception] = [
        RuntimeError("poison"),
        ConnectionRefusedError(111, "refused"),
        ConnectionRefusedError(111, "refused"),
        ConnectionRefusedError(111, "refused"),
        RuntimeError("poison"),
    ]

    async def handle() -> None:
        if errors:
            raise errors.pop(0)

    outcome = await handle_with_retries(handle, outage=Outage("q"), policy=FAST, describe="m")
    assert outcome is Outcome.HANDLED


async def test_a_message_no_longer_held_is_let_go() -> None:
    async def handle() -> None:
        raise ConnectionRefusedError(111, "refused")

    outcome = await handle_with_retries(
        handle, outage=Outage("q"), policy=FAST, describe="m", still_held=lambda: False
    )
    assert outcome is Outcome.RELEASED
