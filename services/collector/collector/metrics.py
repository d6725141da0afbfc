"""The collector's Prometheus metrics (served by every service's ``/metrics``).

The three a poll updates (reads, read time, poll lateness) are kept as plain numbers by
the event loop and turned into metric families when scraped: prometheus_client's own
take a lock for every count, sum and bucket, five per poll, which cost more than
decoding a poll's registers once the rest was made cheap (docs/benchmarks.md).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence

from prometheus_client import REGISTRY, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString


class LoopHistogram(Collector):
    """A histogram observed only from the event loop's thread: a bisect and two additions.

    A scrape from another thread (the metrics server's) reads whole numbers; at worst a
    bucket and the sum of the same observation land in different scrapes.
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        buckets: Sequence[float],
        registry: CollectorRegistry | None = REGISTRY,
    ) -> None:
        self._name = name
        self._documentation = documentation
        self._bounds = (*sorted(float(b) for b in buckets), math.inf)
        self._counts = [0] * len(self._bounds)
        self.sum = 0.0
        if registry is not None:
            registry.register(self)

    def observe(self, amount: float) -> None:
        """Count one observation (in the bucket whose bound is the first >= it)."""
        self._counts[bisect.bisect_left(self._bounds, amount)] += 1
        self.sum += amount

    def collect(self) -> Iterable[Metric]:
        counts, total, cumulative = list(self._counts), self.sum, 0
        buckets = []
        for bound, count in zip(self._bounds, counts, strict=True):
            cumulative += count
            buckets.append((_le(bound), cumulative))
        yield HistogramMetricFamily(
            self._name, self._documentation, buckets=buckets, sum_value=total
        )


def _le(bound: float) -> str:
    """A bucket's bound as Prometheus writes it (prometheus_client's floatToGoString)."""
    text: str = floatToGoString(bound)  # type: ignore[no-untyped-call]
    return text


class LoopCount:
    """One labelled value of a LoopCounter."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def inc(self, amount: int = 1) -> None:
        self.value += amount


class LoopCounter(Collector):
    """A counter with one label, counted only from the event loop's thread (no lock)."""

    def __init__(
        self,
        name: str,
        documentation: str,
        label: str,
        values: Iterable[str],
        registry: CollectorRegistry | None = REGISTRY,
    ) -> None:
        self._name = name.removesuffix("_total")
        self._documentation = documentation
        self._label = label
        self._labelnames = (label,)  # as prometheus_client's metrics name theirs
        self._children = {value: LoopCount() for value in values}
        if registry is not None:
            registry.register(self)

    def labels(self, value: str) -> LoopCount:
        """The count for one label value (made at 0 the first time it is named)."""
        child = self._children.get(value)
        if child is None:
            child = self._children[value] = LoopCount()
        return child

    def collect(self) -> Iterable[Metric]:
        family = CounterMetricFamily(self._name, self._documentation, labels=[self._label])
        for value, child in list(self._children.items()):
            family.add_metric([value], child.value)
        yield family


# Every result a poll can have, created at 0: a panel or alert sees 0, not no data.
READS = LoopCounter(
    "prepaid_collector_reads_total",
    "Meter polls by result (ok, no_reply, exception, implausible, link_down)",
    "result",
    ("ok", "no_reply", "garbled", "exception", "implausible", "link_down"),
)
READ_SECONDS = LoopHistogram(
    "prepaid_collector_read_seconds",
    "Time to read one meter (every block of its profile), successful polls",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
COMMANDS = Counter(
    "prepaid_collector_commands_total",
    "Relay commands finished, by result (succeeded, failed, expired)",
    ["result"],
)
COMMANDS_REFUSED = Counter(
    "prepaid_collector_commands_refused_total",
    "Commands refused before execution, by kind (forged, replayed, expired, wrong_meter, "
    "malformed, unknown_key, unknown_meter; refused: the model cannot do it)",
    ["kind"],
)
METERS_ONLINE = Gauge("prepaid_collector_meters_online", "Meters answering their polls")
METERS_KNOWN = Gauge("prepaid_collector_meters", "Meters on this collector's DTUs")
DTUS_ONLINE = Gauge("prepaid_collector_dtus_online", "DTUs with an open connection")
DTUS_KNOWN = Gauge("prepaid_collector_dtus", "DTUs enabled (the site's, as every replica sees)")
CLOCK_SETS = Counter(
    "prepaid_collector_clock_checks_total",
    "Meter clock checks by result: in_time, set (corrected and read back), anomaly (an "
    "episode begins: beyond reach, refused or not taken), unreadable",
    ["result"],
)
DIAL_INS = Counter(
    "prepaid_collector_dial_ins_total",
    "Connections DTUs opened to the listener, by outcome (attached, unknown, silent)",
    ["outcome"],
)
POLL_LATENESS = LoopHistogram(
    "prepaid_collector_poll_lateness_seconds",
    "How late each scheduled poll starts: a bus whose cycle does not fit its meters runs late",
    buckets=(0.01, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 180.0),
)


# Every label value a counter can take, created at 0: a panel or alert sees 0, not no data.
for _result in ("succeeded", "failed", "expired"):
    COMMANDS.labels(_result)
for _kind in (
    "forged",
    "replayed",
    "expired",
    "wrong_meter",
    "malformed",
    "unknown_key",
    "unknown_meter",
    "refused",
):
    COMMANDS_REFUSED.labels(_kind)
for _result in ("in_time", "set", "anomaly", "unreadable"):
    CLOCK_SETS.labels(_result)
for _outcome in ("attached", "unknown", "silent"):
    DIAL_INS.labels(_outcome)
