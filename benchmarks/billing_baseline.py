"""Billing against its own limit: a COPY of every row billing writes for the same readings.

``bench_billing.py`` used to compare billing with a COPY of the reading rows alone, while
billing writes about seven rows per reading (the reading, its meter's position, the day's
usage, a ledger transaction, two entries, a balance, and an inbox row per message): that
ratio mixed the design's cost with waste. This baseline is what the same rows cost when
written the cheapest way PostgreSQL has:

1. ``write_counts`` reads ``pg_stat_user_tables`` (rows inserted, updated, deleted) for
   billing's tables, partitions summed into their table, before and after billing drains
   the readings; ``settled_counts`` waits until the counters stop moving (a backend
   reports its counts at most once a second, and when it goes idle);
2. ``written_rows_copy`` creates, for every table billing wrote, a scratch table ``LIKE``
   it ``INCLUDING ALL`` (same columns, defaults, indexes and constraints; foreign keys are
   never copied by ``LIKE``, so the baseline skips their checks), then prepares as many
   rows as billing inserted plus updated there (an update counts as one row written: the
   new row version PostgreSQL writes), taken from billing's own rows in binary
   (``copy_from_query``). Where billing left fewer rows than it wrote (a balance updated a
   thousand times, an outbox row deleted by the relay) the rows are repeated with their key
   columns made unique (a suffix on text keys, an offset on integer keys); a table with no
   row left gets rows of its shape. Deleted rows are reported, not copied (a COPY has no
   counterpart to the relay's DELETE);
3. the COPY of all those prepared rows (``copy_to_table``, binary, one statement per
   table, back to back on one connection) is timed three times, the scratch tables emptied
   between; with the median, readings / COPY seconds is the readings/s the rows billing
   writes allow at best, and billing's readings/s divided by it is the ratio reported.
"""

from __future__ import annotations

import asyncio
import io
import json
import statistics
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg

READINGS_TABLE = "billing_readings"
OUTBOX_TABLE = "billing_outbox"
COPY_REPEATS = 3

# (inserted, updated, deleted) by table.
Counts = dict[str, tuple[int, int, int]]


async def write_counts(dsn: str) -> Counts:
    """Rows inserted, updated and deleted so far in each of billing's tables (a partition's
    counts added to its partitioned table's)."""
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(
            "SELECT coalesce(pg_partition_root(relid), relid)::regclass::text AS name,"
            " sum(n_tup_ins)::bigint AS ins, sum(n_tup_upd)::bigint AS upd,"
            " sum(n_tup_del)::bigint AS del"
            " FROM pg_stat_user_tables WHERE relname LIKE 'billing\\_%' GROUP BY 1"
        )
    finally:
        await connection.close()
    return {row["name"]: (row["ins"], row["upd"], row["del"]) for row in rows}


async def settled_counts(
    dsn: str, since: Counts, readings: int | None = None, timeout: float = 20.0
) -> Counts:
    """``write_counts`` once the counters have stopped moving (and, with ``readings``, show
    that many readings inserted since ``since``), or after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last = await write_counts(dsn)
    while time.monotonic() < deadline:
        await asyncio.sleep(1.5)
        now = await write_counts(dsn)
        stable = now == last
        last = now
        if stable and (readings is None or inserted_readings(since, now) >= readings):
            break
    return last


def inserted_readings(before: Counts, after: Counts) -> int:
    return after.get(READINGS_TABLE, (0, 0, 0))[0] - before.get(READINGS_TABLE, (0, 0, 0))[0]


def deltas(before: Counts, after: Counts) -> dict[str, dict[str, Any]]:
    """What billing wrote between two snapshots, by table (tables it did not touch left out)."""
    out: dict[str, dict[str, Any]] = {}
    for name, (ins, upd, dele) in sorted(after.items()):
        was = before.get(name, (0, 0, 0))
        row = {"inserted": ins - was[0], "updated": upd - was[1], "deleted": dele - was[2]}
        if any(row.values()):
            out[name] = row
    return out


async def _columns(connection: asyncpg.Connection, table: str) -> list[asyncpg.Record]:
    columns: list[asyncpg.Record] = await connection.fetch(
        "SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type,"
        " t.typcategory::text AS category, a.attnum AS number"
        " FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid"
        " WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped"
        " ORDER BY a.attnum",
        table,
    )
    return columns


async def _varied_columns(
    connection: asyncpg.Connection, table: str, columns: list[asyncpg.Record]
) -> set[str]:
    """One column of each unique index or constraint (a text one if there is one): varying
    it per repetition keeps every repeated row unique."""
    by_number = {column["number"]: column for column in columns}
    indexes = await connection.fetch(
        "SELECT indkey::int2[] AS keys FROM pg_index WHERE indrelid = $1::regclass AND indisunique",
        table,
    )
    varied: set[str] = set()
    for index in indexes:
        keys = [by_number[number] for number in index["keys"] if number in by_number]
        if not keys or any(key["name"] in varied for key in keys):
            continue
        text_keys = [key for key in keys if key["category"] == "S"]
        varied.add((text_keys or keys)[0]["name"])
    return varied


def _limit(type_: str) -> int | None:
    """The length limit of a ``character varying(n)``, or None."""
    if "(" in type_ and type_.startswith(("character varying", "character(")):
        return int(type_[type_.index("(") + 1 : type_.index(")")])
    return None


async def _source_query(connection: asyncpg.Connection, table: str, source: str, rows: int) -> str:
    """A query giving ``rows`` rows shaped as ``table``'s, from the rows of ``source``."""
    columns = await _columns(connection, table)
    varied = await _varied_columns(connection, table, columns)
    present: int = await connection.fetchval(f"SELECT count(*) FROM {source}")
    if present == 0:
        raise RuntimeError(f"no row of {source} to take the shape from")
    repeats = -(-rows // present)
    items = []
    for column in columns:
        name = f's."{column["name"]}"'
        if column["name"] not in varied or repeats == 1:
            items.append(name)
        elif column["category"] == "S":
            limit = _limit(column["type"])
            # Repetition 0 keeps the value; the others end in "~<repetition>", cutting the
            # value short if the column's limit needs it (random ids stay unique by prefix).
            kept = name if limit is None else f"left({name}, {limit} - 1 - length(g::text))"
            items.append(f"CASE WHEN g = 0 THEN {name} ELSE {kept} || '~' || g END")
        else:
            span: int = await connection.fetchval(
                f'SELECT coalesce(max("{column["name"]}") - min("{column["name"]}"), 0) + 1'
                f" FROM {source}"
            )
            items.append(f"{name} + g::bigint * {span}")
    return (
        f"SELECT {', '.join(items)} FROM generate_series(0, {repeats - 1}) AS r(g)"
        f" CROSS JOIN {source} AS s LIMIT {rows}"
    )


async def _outbox_shapes(connection: asyncpg.Connection, scratch: str) -> str:
    """A table of outbox rows shaped as billing's (a relay request, what its supply
    decisions emit) for when the relay left none: it deletes every row it published."""
    await connection.execute(f"CREATE TEMP TABLE {scratch}_shape (LIKE {OUTBOX_TABLE})")
    now = datetime.now(UTC)
    envelopes = []
    for index in range(100):
        message_id = str(uuid.uuid4())
        payload = {
            "request_id": str(uuid.uuid4()),
            "meter_id": f"BM{index:06d}",
            "account_id": f"BA{index:06d}",
            "action": "off",
            "reason": "balance at or below the trip line",
            "at": now.isoformat(),
            "batch": None,
        }
        envelope = {
            "message_id": message_id,
            "type": "relay.requested.v1",
            "routing_key": "relay.requested.v1",
            "producer": "billing",
            "payload": payload,
            "correlation_id": str(uuid.uuid4()),
        }
        envelopes.append((index + 1, message_id, json.dumps(envelope), now))
    await connection.copy_records_to_table(
        f"{scratch}_shape",
        records=envelopes,
        columns=["id", "message_id", "envelope", "created_at"],
    )
    return f"{scratch}_shape"


async def written_rows_copy(
    dsn: str, start: Counts, warm: Counts | None, committed: int
) -> dict[str, Any]:
    """Time a COPY of as many rows, of the same shapes, as billing wrote per table; return
    the figures.

    ``start`` is ``write_counts`` before billing started, ``warm`` right after its warm-up
    round (None: none), ``committed`` the readings billing committed since ``start``. Once
    the counters settle, the rows written since ``warm`` are the ones copied, for the
    readings inserted since then (billing's rate is measured after the warm-up too, and the
    warm-up round charges nothing); the whole drain is reported beside them.
    """
    after = await settled_counts(dsn, start, committed)
    # A warm-up snapshot taken before PostgreSQL reported any of the warm-up's rows is the
    # start: then the rows copied include the warm-up round's (which charges nothing).
    after_warm_up = warm is not None and inserted_readings(start, warm) > 0
    before = warm if warm is not None and after_warm_up else start
    written = deltas(before, after)
    readings = inserted_readings(before, after)
    if readings <= 0:
        raise RuntimeError("no reading written between the snapshots")
    connection = await asyncpg.connect(dsn)
    scratch_tables: list[str] = []
    prepared: list[tuple[str, io.BytesIO]] = []
    try:
        for table, counts in written.items():
            rows = counts["inserted"] + counts["updated"]
            counts["rows_copied"] = rows
            if rows == 0:
                continue
            scratch = f"bench_copy_{table}"
            await connection.execute(f"CREATE TABLE {scratch} (LIKE {table} INCLUDING ALL)")
            scratch_tables.append(scratch)
            source = table
            present = await connection.fetchval(f"SELECT EXISTS (SELECT FROM {table})")
            if not present and table == OUTBOX_TABLE:
                source = await _outbox_shapes(connection, scratch)
            buffer = io.BytesIO()
            await connection.copy_from_query(
                await _source_query(connection, table, source, rows),
                output=buffer,
                format="binary",
            )
            prepared.append((scratch, buffer))
        # Three times, the scratch tables emptied between: a second's COPY on a shared
        # machine is at the mercy of whatever else runs in it; the median is reported.
        timings = []
        for _ in range(COPY_REPEATS):
            began = time.monotonic()
            for scratch, buffer in prepared:
                buffer.seek(0)
                await connection.copy_to_table(scratch, source=buffer, format="binary")
            timings.append(time.monotonic() - began)
            await connection.execute(f"TRUNCATE {', '.join(scratch_tables)}")
        seconds = statistics.median(timings)
    finally:
        for scratch in scratch_tables:
            await connection.execute(f"DROP TABLE IF EXISTS {scratch}")
        await connection.close()
    total = sum(counts["rows_copied"] for counts in written.values())
    for counts in written.values():
        counts |= {
            f"{key}_per_reading": round(counts[key] / readings, 3)
            for key in ("inserted", "updated", "deleted", "rows_copied")
        }
    return {
        "readings": readings,
        "rows": total,
        "rows_per_reading": round(total / readings, 3),
        "seconds": round(seconds, 3),
        "seconds_each": [round(timing, 3) for timing in timings],
        "rows_per_second": round(total / seconds),
        "readings_per_second": round(readings / seconds),
        "tables": written,
        "since": "warm-up" if after_warm_up else "start (the warm-up round included)",
        "whole_drain": {
            "readings": inserted_readings(start, after),
            "tables": deltas(start, after),
        },
        "counting": "rows copied = rows inserted + rows updated (an update as one row "
        "written); deleted rows reported, not copied",
    }
