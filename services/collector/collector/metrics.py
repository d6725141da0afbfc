"""The collector's Prometheus metrics (served by every service's ``/metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

READS = Counter(
    "prepaid_collector_reads_total",
    "Meter polls by result (ok, no_reply, exception, implausible, link_down)",
    ["result"],
)
READ_SECONDS = Histogram(
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
POLL_LATENESS = Histogram(
    "prepaid_collector_poll_lateness_seconds",
    "How late each scheduled poll starts: a bus whose cycle does not fit its meters runs late",
    buckets=(0.01, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 180.0),
)


# Every label value a counter can take, created at 0: a panel or alert sees 0, not no data.
for _result in ("ok", "no_reply", "exception", "implausible", "link_down"):
    READS.labels(_result)
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
