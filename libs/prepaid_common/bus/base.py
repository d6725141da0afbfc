"""The bus contract every adapter keeps.

* ``publish`` returns only once the message is safe: confirmed by the broker, or, in
  process, handled by every subscriber. The outbox relay deletes a row only after that.
* A handler that raises because a dependency is down (``is_infrastructure_failure``: the
  database or broker unreachable, a serialization conflict, a timeout) keeps its message:
  the consumer retries it with back-off until the dependency is back and takes no other
  work meanwhile; the message is not requeued, so no delivery attempt is spent. A handler
  that raises on the message's content gets a few more attempts after growing delays, and
  then the message goes to the dead-letter queue.
* A subscription's messages are handled one at a time, in publish order, so that per-meter
  order is kept.
* A batch subscription hands its handler a list of messages in publish order and
  acknowledges them only after the handler returned (its commit); when a batch fails on
  its content, its messages are retried one at a time so that a poison message is
  isolated and dead-lettered alone (a batch failing on a dependency is retried whole once
  it is back). A handler may let the next batch start before it has finished
  (``release_next_batch``) once it holds what keeps per-key order; acks stay in order.
  A batch takes no more messages once it holds ``max_batch`` items: a message counts as
  one unless the subscription weighs it (a message carrying many readings counts as
  that many), so a heavy last message may take a batch past ``max_batch``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol

from prepaid_common.contracts import Envelope

Handler = Callable[[Envelope], Awaitable[None]]
BatchHandler = Callable[[list[Envelope]], Awaitable[None]]
# How many items a message carries, for bounding a batch's size.
Weigh = Callable[[Envelope], int]

MAX_DELIVERIES = 5

# Set by a bus around each batch it hands over: calling it lets the next batch start.
RELEASE_NEXT_BATCH: ContextVar[Callable[[], None] | None] = ContextVar(
    "release_next_batch", default=None
)


def release_next_batch() -> None:
    """Let the bus start the next batch while this one commits.

    A batch handler calls this once it holds what orders its work against the next batch
    (billing: the row locks of the batch's meters), so the next batch's work overlaps this
    one's writes and commit. Without the call, batches run strictly one after the other.
    Outside a bus batch it does nothing.
    """
    release = RELEASE_NEXT_BATCH.get()
    if release is not None:
        release()


class PublishFailed(Exception):
    """``publish_many`` could not make every message safe; the first ``confirmed`` are."""

    def __init__(self, confirmed: int, cause: BaseException) -> None:
        super().__init__(f"{confirmed} messages confirmed before: {cause!r}")
        self.confirmed = confirmed
        self.cause = cause


@dataclass(frozen=True)
class Subscription:
    """A named durable queue bound to topic patterns (``reading.v1.#``)."""

    queue: str
    bindings: tuple[str, ...]
    handler: Handler


@dataclass(frozen=True)
class BatchSubscription:
    """A queue whose handler takes batches gathered for up to ``max_wait`` s, each closed
    once it holds ``max_batch`` items (see the module's contract)."""

    queue: str
    bindings: tuple[str, ...]
    handler: BatchHandler
    max_batch: int
    max_wait: float
    weigh: Weigh | None = None
    # Unacknowledged messages the broker may hand over (None: three batches of single
    # items). A weighed queue sets it: its messages may each carry many items.
    prefetch: int | None = None
    # Only one consumer of the queue takes messages at a time, even while another process
    # consumes it too (a rolling restart); the next takes over with what it left unacked.
    single_active_consumer: bool = False

    def weight(self, envelope: Envelope) -> int:
        """How much of ``max_batch`` a message takes (at least 1)."""
        return 1 if self.weigh is None else max(1, self.weigh(envelope))


class MessageBus(Protocol):
    """Publish confirmed messages; deliver them to subscriptions at least once."""

    def subscribe(self, queue: str, bindings: Sequence[str], handler: Handler) -> None:
        """Register a subscription; call before ``start``."""

    def subscribe_batch(
        self,
        queue: str,
        bindings: Sequence[str],
        handler: BatchHandler,
        *,
        max_batch: int = 500,
        max_wait: float = 0.05,
        weigh: Weigh | None = None,
        prefetch: int | None = None,
        single_active_consumer: bool = False,
    ) -> None:
        """Register a batch subscription; call before ``start``."""

    async def start(self) -> None:
        """Connect and begin delivering to subscriptions."""

    async def publish(self, envelope: Envelope) -> None:
        """Publish and return once the message is safe."""

    async def publish_many(self, envelopes: Sequence[Envelope]) -> None:
        """Publish in order and return once every message is safe.

        Raises PublishFailed, saying how many leading messages are safe, when not all are.
        """

    async def close(self) -> None:
        """Stop consuming, finish the message in hand and disconnect."""

    async def check(self) -> None:
        """Raise ConnectionError (or OSError) if the broker cannot be reached now."""


def topic_matches(pattern: str, key: str) -> bool:
    """Match an AMQP topic pattern: ``*`` is one word, ``#`` is zero or more."""
    return _match(pattern.split("."), key.split("."))


def _match(pattern: list[str], words: list[str]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(_match(rest, words[i:]) for i in range(len(words) + 1))
    if not words:
        return False
    return (head in ("*", words[0])) and _match(rest, words[1:])
