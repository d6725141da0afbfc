"""Every Grafana panel answers against a running cluster, as ``make run-cluster`` starts it.

``deploy/run-cluster.sh`` runs each service as its own process against the shared PostgreSQL
and RabbitMQ (a database and a bus prefix of this test's own, ports picked free), with the
field simulator and the demo data. Debian's ``prometheus`` scrapes them with the jobs of
``deploy/prometheus/prometheus.yml`` (targets pointed at this machine, a 1 s interval) and
evaluates ``deploy/prometheus/rules``; then every panel's expression and every template
variable of ``deploy/grafana/dashboards`` goes through Prometheus' HTTP API and must return
at least one series. A panel that by design shows an event (a refusal, a dead letter) still
answers, because its counters exist at 0 from the start.

Needs: PostgreSQL, RabbitMQ with its Prometheus plugin (port 15692, as compose enables it:
``rabbitmq-plugins enable rabbitmq_prometheus``), the ``prometheus`` binary (.ci/run installs
it). Without them it is skipped locally and fails under CI (``CI=true``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from testkit.servers import (
    AMQP_URL,
    PG_ADMIN_DSN,
    amqp_address,
    postgres_address,
    postgres_test_url,
)

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
RULES_DIR = ROOT / "deploy" / "prometheus" / "rules"
RABBITMQ_METRICS_PORT = 15692
IN_CI = os.environ.get("CI", "").lower() == "true"

# What Grafana puts in place of its own variables: a rate window of several scrapes (1 s
# apart here) and a "today so far" range.
GRAFANA_VARIABLES = {"$__rate_interval": "15s", "$__range": "1h", "$__interval": "5s"}
# A small site: the panels need series, not volume.
SIM_DTUS, SIM_METERS = 2, 4


def need(condition: bool, message: str) -> None:
    if condition:
        return
    if IN_CI:
        pytest.fail(f"{message} (CI must provide it)")
    pytest.skip(message)


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_port_range(count: int) -> int:
    """Return the first of ``count`` consecutive free ports (the simulator's DTUs)."""
    for _ in range(50):
        base = free_port()
        if base + count > 65535:
            continue
        try:
            socks = []
            for port in range(base, base + count):
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError("no range of free ports")


def wait_until(what: str, check: Any, *, seconds: float, log: Path | None = None) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-4000:] if log and log.exists() else ""
            raise AssertionError(f"{what} not within {seconds:.0f} s\n{tail}")
        time.sleep(0.5)


@dataclass
class Cluster:
    targets: dict[str, str]  # scrape job -> host:port
    log: Path
    bus_prefix: str


def stop_group(process: subprocess.Popen[bytes], *, seconds: float = 20) -> None:
    """TERM the process (the script stops its children), then KILL its group if still there."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=seconds)
    # The script's children are in its session; whatever outlived it goes now.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def drop_database(name: str) -> None:
    import asyncio

    import asyncpg  # type: ignore[import-untyped]

    async def drop() -> None:
        admin = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()

    asyncio.run(drop())


def delete_queues(prefix: str) -> None:
    """Remove this run's queues from the shared broker (its management API, when it runs)."""
    host, _ = amqp_address()
    api = f"http://{host}:15672/api"
    try:
        with httpx.Client(auth=("guest", "guest"), timeout=10) as client:
            for queue in client.get(f"{api}/queues").json():
                if queue["name"].startswith(f"{prefix}."):
                    vhost = queue["vhost"].replace("/", "%2F")
                    client.delete(f"{api}/queues/{vhost}/{queue['name']}")
    except (httpx.HTTPError, ValueError, TypeError, KeyError):
        pass  # tidiness only: the queues are this run's and idle


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    need(reachable(*postgres_address()), "PostgreSQL is not reachable")
    need(reachable(*amqp_address()), "RabbitMQ is not reachable")
    run_id = uuid.uuid4().hex[:10]
    database = f"prepaid_dash_{run_id}"
    prefix = f"dash-{run_id}"
    ports = {
        name: free_port()
        for name in ("gateway", "collector", "billing", "control", "payments", "notifications")
    }
    sim_base = free_port_range(SIM_DTUS)
    env = {
        **os.environ,
        "PREPAID_ENVIRONMENT": "development",
        "PREPAID_DATABASE_URL": postgres_test_url(database),
        "PREPAID_AMQP_URL": AMQP_URL,
        "PREPAID_BUS_PREFIX": prefix,
        "PREPAID_HTTP_PORT": str(ports["gateway"]),
        **{
            f"PREPAID_{name.upper()}_URL": f"http://127.0.0.1:{port}"
            for name, port in ports.items()
            if name not in ("gateway", "notifications")
        },
        "PREPAID_NOTIFICATIONS_PORT": str(ports["notifications"]),
        # No fixed DTU listener port beside other runs; quick polls and site measurements.
        "PREPAID_COLLECTOR_LISTEN_PORT": "0",
        "PREPAID_POLL_INTERVAL_SECONDS": "1",
        "PREPAID_BILLING_SWEEP_INTERVAL_SECONDS": "2",
        "SIM_DTUS": str(SIM_DTUS),
        "SIM_METERS": str(SIM_METERS),
        "SIM_BASE_PORT": str(sim_base),
    }
    log = tmp_path / "cluster.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["bash", "deploy/run-cluster.sh"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield Cluster(
            targets={name: f"127.0.0.1:{port}" for name, port in ports.items()},
            log=log,
            bus_prefix=prefix,
        )
    finally:
        stop_group(process)
        drop_database(database)
        delete_queues(prefix)


def scrape_config(targets: dict[str, str], rules: Path) -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml with this machine's targets, faster, the repo's rules."""
    config: dict[str, Any] = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(rules)]
    rabbitmq = f"{amqp_address()[0]}:{RABBITMQ_METRICS_PORT}"
    for job in config["scrape_configs"]:
        name = job["job_name"]
        if name in targets:
            job["static_configs"] = [{"targets": [targets[name]]}]
        elif name.startswith("rabbitmq"):
            job["static_configs"] = [{"targets": [rabbitmq]}]
        elif name == "prometheus":
            job["static_configs"] = [{"targets": [targets["prometheus"]]}]
        else:
            raise AssertionError(f"prometheus.yml has a job this test does not know: {name}")
    return config


@pytest.fixture
def prometheus(cluster: Cluster, tmp_path: Path) -> Iterator[str]:
    binary = shutil.which("prometheus")
    need(binary is not None, "prometheus is not installed (apt-get install prometheus)")
    need(
        reachable(amqp_address()[0], RABBITMQ_METRICS_PORT),
        "RabbitMQ's Prometheus plugin does not answer "
        "(rabbitmq-plugins enable rabbitmq_prometheus)",
    )
    assert binary is not None
    address = f"127.0.0.1:{free_port()}"
    config = scrape_config(
        {**cluster.targets, "prometheus": address}, RULES_DIR / "prepaid.rules.yml"
    )
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    log = tmp_path / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address={address}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        url = f"http://{address}"
        wait_until("Prometheus ready", lambda: ready(url), seconds=30, log=log)
        yield url
    finally:
        stop_group(process)


def ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/-/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass(frozen=True)
class Query:
    where: str
    expr: str


def panel_queries() -> list[Query]:
    """Every panel target and template variable, with Grafana's variables filled in."""
    queries = []
    for path in DASHBOARDS:
        board = json.loads(path.read_text(encoding="utf-8"))
        variables = {f"${v['name']}": ".*" for v in board["templating"]["list"]}
        fill = {**GRAFANA_VARIABLES, **variables}

        def substitute(expr: str, fill: dict[str, str] = fill) -> str:
            # Longest names first: $__rate_interval before $__range.
            for name in sorted(fill, key=len, reverse=True):
                expr = expr.replace(name, fill[name])
            return expr

        for panel in board["panels"]:
            for target in panel.get("targets", []):
                where = f"{path.name} / {panel['title']} / {target.get('refId', '?')}"
                queries.append(Query(where, substitute(target["expr"])))
        for variable in board["templating"]["list"]:
            call = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", variable["query"]["query"])
            assert call, f"{path.name}: ${variable['name']}"
            selector, label = call.groups()
            # label_values(m, l) lists l over m's series: some must carry l.
            selector = substitute(selector)
            carrying = (
                selector.replace("{", f'{{{label}!="", ', 1)
                if "{" in selector
                else f'{selector}{{{label}!=""}}'
            )
            queries.append(
                Query(f"{path.name} / ${variable['name']}", f"count by ({label}) ({carrying})")
            )
    return queries


def answers(url: str, query: Query) -> list[dict[str, Any]]:
    reply = httpx.get(f"{url}/api/v1/query", params={"query": query.expr}, timeout=10)
    body = reply.json()
    assert body.get("status") == "success", f"{query.where}: {query.expr}\n{body}"
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


@pytest.mark.timeout(300)
def test_every_panel_and_variable_returns_data(cluster: Cluster, prometheus: str) -> None:
    queries = panel_queries()
    assert len(queries) > 40
    # The seed has run (it logs in, registers DTUs, meters and accounts, tops up).
    wait_until(
        "the cluster and its demo data",
        lambda: "Cluster running" in cluster.log.read_text(errors="replace"),
        seconds=120,
        log=cluster.log,
    )

    def every_target_up() -> bool:
        reply = httpx.get(f"{prometheus}/api/v1/targets", timeout=5).json()
        return all(t["health"] == "up" for t in reply["data"]["activeTargets"])

    wait_until("every scrape target up", every_target_up, seconds=30, log=cluster.log)

    empty: list[Query] = []

    def all_answer() -> bool:
        empty[:] = [query for query in queries if not answers(prometheus, query)]
        return not empty

    try:
        wait_until("every panel answering", all_answer, seconds=60)
    except AssertionError:
        listing = "\n".join(f"  {q.where}: {q.expr}" for q in empty)
        raise AssertionError(f"{len(empty)} panel queries return no series:\n{listing}") from None
    # Readings flowed: the collector read meters and billing rated them (not only zeros).
    rated = answers(prometheus, Query("rated", "sum(prepaid_billing_readings_rated_total)"))
    assert float(rated[0]["value"][1]) > 0, cluster.log.read_text(errors="replace")[-4000:]
