"""How a consumer retries a message it holds: an outage is waited out, a poison message is not.

A handler failing because a dependency is down (``is_infrastructure_failure``) is tried
again with back-off for as long as the dependency stays down: the message stays in hand,
unacknowledged and never requeued, so the queue's delivery limit is not spent and nothing
is dead-lettered because PostgreSQL restarted. A handler failing on the message itself is
tried a few more times after growing delays, then the message goes to the dead-letter
queue. An outage is logged once when it starts and once when it ends.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from prepaid_common.bus.metrics import CONSUMER_WAITING
from prepaid_common.failures import is_infrastructure_failure

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """Delays before each further attempt of a failing message."""

    # A poison message: one attempt, then one more after each delay, then dead-lettered.
    poison_delays: tuple[float, ...] = (0.25, 1.0, 4.0)
    # An outage: the first wait, doubled after each failure up to the cap.
    outage_first_delay: float = 0.1
    outage_max_delay: float = 5.0


class Outcome(enum.Enum):
    """How a held message ended."""

    HANDLED = "handled"
    POISON = "poison"  # failed on its own content every time: dead-letter it
    RELEASED = "released"  # its link closed while waiting: the broker delivers it again


class Outage:
    """One subscription's view of a dependency outage, so that it is logged once."""

    def __init__(self, queue: str) -> None:
        self.queue = queue
        self._since: float | None = None

    @property
    def ongoing(self) -> bool:
        return self._since is not None

    def begin(self, error: BaseException) -> None:
        """Note that a dependency is down (logged only when the outage starts)."""
        if self._since is not None:
            return
        self._since = asyncio.get_running_loop().time()
        CONSUMER_WAITING.labels(self.queue).set(1)
        log.warning(
            "dependency unavailable; holding the message and retrying until it is back",
            extra={"queue": self.queue, "error": repr(error)},
        )

    def end(self) -> None:
        """Note that a message went through again (logged only when an outage ends)."""
        if self._since is None:
            return
        waited = asyncio.get_running_loop().time() - self._since
        self._since = None
        CONSUMER_WAITING.labels(self.queue).set(0)
        log.warning(
            "dependency back; consuming again",
            extra={"queue": self.queue, "waited_seconds": round(waited, 3)},
        )


async def handle_with_retries(
    handle: Callable[[], Awaitable[None]],
    *,
    outage: Outage,
    policy: RetryPolicy,
    describe: str,
    first_error: BaseException | None = None,
    still_held: Callable[[], bool] | None = None,
) -> Outcome:
    """Run ``handle`` until it succeeds, the message proves poison, or it is no longer held.

    ``first_error`` is the failure of an attempt already made (a batch's); ``still_held``
    says whether the message is still ours to settle (its connection is open).
    """
    error = first_error
    poison_attempts = 0
    delay = policy.outage_first_delay
    while True:
        if error is None:
            try:
                await handle()
            except Exception as failed:
                error = failed
            else:
                outage.end()
                return Outcome.HANDLED
        if is_infrastructure_failure(error):
            outage.begin(error)
            await asyncio.sleep(delay)
            delay = min(2 * delay, policy.outage_max_delay)
        else:
            if poison_attempts >= len(policy.poison_delays):
                log.error(
                    "message failed on its own content; dead-lettering it",
                    extra={"queue": outage.queue, "delivery": describe, "error": repr(error)},
                )
                return Outcome.POISON
            log.warning(
                "handler failed; trying the message again later",
                extra={
                    "queue": outage.queue,
                    "delivery": describe,
                    "attempt": poison_attempts + 1,
                    "error": repr(error),
                },
            )
            await asyncio.sleep(policy.poison_delays[poison_attempts])
            poison_attempts += 1
        error = None
        if still_held is not None and not still_held():
            return Outcome.RELEASED
