#!/usr/bin/env bash
# Cluster mode on one machine: each service its own process, PostgreSQL and RabbitMQ on
# localhost, the field simulator, then the demo data. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin

export PREPAID_DATABASE_URL=${PREPAID_DATABASE_URL:-postgresql+asyncpg://postgres@127.0.0.1:5432/prepaid}
export PREPAID_AMQP_URL=${PREPAID_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/}
export PREPAID_LOG_FORMAT=${PREPAID_LOG_FORMAT:-text}
export PREPAID_ADMIN_PASSWORD=${PREPAID_ADMIN_PASSWORD:-$($BIN/python -c 'import secrets; print(secrets.token_urlsafe(12))')}
export PREPAID_TOKEN_SECRET=${PREPAID_TOKEN_SECRET:-$($BIN/python -c 'import secrets; print(secrets.token_urlsafe(32))')}
# Control seals meter commands with it and the collector verifies them (one run's key).
export PREPAID_COMMAND_MASTER_KEYS=${PREPAID_COMMAND_MASTER_KEYS:-1 $($BIN/python -c 'import secrets; print(secrets.token_hex(16))')}
SIM_ARGS=(--dtus "${SIM_DTUS:-10}" --meters "${SIM_METERS:-8}" --base-port "${SIM_BASE_PORT:-15020}")
# The ports: the gateway's public one, and each service's internal API as the gateway's URL
# settings name it (a second cluster beside this one sets other ports, a database name in
# PREPAID_DATABASE_URL and a PREPAID_BUS_PREFIX of its own).
export PREPAID_HTTP_PORT=${PREPAID_HTTP_PORT:-8000}
export PREPAID_COLLECTOR_URL=${PREPAID_COLLECTOR_URL:-http://127.0.0.1:8101}
export PREPAID_BILLING_URL=${PREPAID_BILLING_URL:-http://127.0.0.1:8102}
export PREPAID_CONTROL_URL=${PREPAID_CONTROL_URL:-http://127.0.0.1:8103}
export PREPAID_PAYMENTS_URL=${PREPAID_PAYMENTS_URL:-http://127.0.0.1:8104}
# Notifications is called by no other service: only its port (its internal API and /metrics).
PREPAID_NOTIFICATIONS_PORT=${PREPAID_NOTIFICATIONS_PORT:-8105}

"$BIN/python" - <<'PY'
import asyncio, os
import asyncpg
from sqlalchemy.engine import make_url

async def main() -> None:
    url = make_url(os.environ["PREPAID_DATABASE_URL"])
    admin = await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username, password=url.password,
        database="postgres",
    )
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", url.database):
            await admin.execute(f'CREATE DATABASE "{url.database}"')
    finally:
        await admin.close()

asyncio.run(main())
PY

pids=()
stop() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap stop EXIT INT TERM

# Run a command again whenever it exits, as a process supervisor would (a service waits for
# its database and broker by itself; this covers a crash or a kill). Stopped by TERM.
supervise() {
    local name=$1 child status
    shift
    trap 'kill "$child" 2>/dev/null; wait "$child" 2>/dev/null; exit 0' TERM INT
    while true; do
        "$@" &
        child=$!
        status=0
        wait "$child" || status=$?
        echo "run-cluster: $name exited with status $status; starting it again in 2 s" >&2
        sleep 2
    done
}

"$BIN/python" -m simulator "${SIM_ARGS[@]}" --speed 60 >/dev/null & pids+=($!)
for svc in collector:$PREPAID_COLLECTOR_URL billing:$PREPAID_BILLING_URL \
    control:$PREPAID_CONTROL_URL payments:$PREPAID_PAYMENTS_URL; do
    supervise "${svc%%:*}" env PREPAID_SERVICE_PORT="${svc##*:}" "$BIN/python" -m "${svc%%:*}" &
    pids+=($!)
done
supervise notifications env PREPAID_SERVICE_PORT="$PREPAID_NOTIFICATIONS_PORT" \
    "$BIN/python" -m notifications & pids+=($!)
supervise gateway "$BIN/python" -m gateway & pids+=($!)

for _ in $(seq 1 60); do
    "$BIN/python" -c 'import httpx; httpx.get("http://127.0.0.1:'"$PREPAID_HTTP_PORT"'/healthz").raise_for_status()' 2>/dev/null && break
    sleep 1
done
# The admin's password reaches the seed in its environment (exported above), not on its
# command line, where ps shows it.
"$BIN/python" -m standalone.seed --gateway "http://127.0.0.1:$PREPAID_HTTP_PORT" "${SIM_ARGS[@]}"
echo "Cluster running: http://127.0.0.1:$PREPAID_HTTP_PORT/docs  (admin / $PREPAID_ADMIN_PASSWORD)"
wait
