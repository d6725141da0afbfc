"""Every metric a dashboard panel, a template variable or a rule queries is one the product
exports (or an allow-listed one of Prometheus or RabbitMQ), with the labels it matches on.

The exported names come from the prometheus_client registry after importing every module that
declares metrics: the ``*.metrics`` modules and those the layer contract still lets declare
theirs (pyproject.toml, contract ``metrics-in-metrics-modules``).
"""

from __future__ import annotations

import importlib
import json
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import REGISTRY

ROOT = Path(__file__).resolve().parents[3]
DASHBOARDS = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
RULES = ROOT / "deploy" / "prometheus" / "rules" / "prepaid.rules.yml"

# Not the product's: Prometheus' own series, and RabbitMQ's per-queue metrics (scraped by the
# rabbitmq-queues job of prometheus.yml), each with the labels the queries may use.
ALLOWED_EXTERNAL: dict[str, set[str]] = {
    "up": set(),
    "ALERTS": {"alertname", "alertstate", "severity", "area"},
    "rabbitmq_detailed_queue_messages_ready": {"queue", "vhost"},
    "rabbitmq_detailed_queue_messages_unacked": {"queue", "vhost"},
    "rabbitmq_detailed_queue_consumers": {"queue", "vhost"},
}
TARGET_LABELS = {"job", "instance"}
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
    "bool", "offset", "inf", "nan",
    # Aggregations, followed by their by/without clause rather than a parenthesis.
    "sum", "min", "max", "avg", "count", "group", "stddev", "stdvar", "topk", "bottomk",
    "quantile", "count_values",
}  # fmt: skip


def metric_modules() -> list[str]:
    paths = [*ROOT.glob("services/*/*/metrics.py"), *ROOT.glob("libs/*/metrics.py")]
    for path in paths:
        # A service added since pyproject.toml's pythonpath was last written imports too.
        if str(path.parents[1]) not in sys.path:
            sys.path.append(str(path.parents[1]))
    names = {f"{path.parent.name}.metrics" for path in paths}
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    for contract in config["tool"]["importlinter"]["contracts"]:
        if contract.get("id") == "metrics-in-metrics-modules":
            names |= {line.split(" -> ")[0] for line in contract.get("ignore_imports", [])}
    return sorted(names)


def exported() -> dict[str, set[str]]:
    """Series names the product exports, each with the label names it carries."""
    for module in metric_modules():
        importlib.import_module(module)
    series: dict[str, set[str]] = {}
    for collector, names in REGISTRY._collector_to_names.items():
        labels = set(getattr(collector, "_labelnames", ()))
        for name in names:
            series[name] = labels | ({"le"} if name.endswith("_bucket") else set())
    return {name: labels for name, labels in series.items() if name.startswith("prepaid_")}


def recorded() -> set[str]:
    rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return {
        rule["record"] for group in rules["groups"] for rule in group["rules"] if "record" in rule
    }


def queried(expr: str) -> list[tuple[str, set[str]]]:
    """Return the series an expression selects, each with the labels its matchers name."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings say nothing about names
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges: [5m], [$__rate_interval]
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1", expr)
    found = []
    for match in re.finditer(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?\s*(\()?", expr):
        name, matchers, call = match.groups()
        if call or name.lower() in PROMQL_WORDS or name.startswith("__"):
            continue
        labels = set(re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", matchers or ""))
        found.append((name, labels))
    return found


def expressions() -> list[tuple[str, str]]:
    """(where, PromQL) for every panel query, template variable and rule."""
    found = []
    for path in DASHBOARDS:
        board: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        for panel in board["panels"]:
            for target in panel["targets"]:
                found.append((f"{path.name} / {panel['title']}", target["expr"]))
        for variable in board["templating"]["list"]:
            query = variable["query"]["query"] if isinstance(variable["query"], dict) else ""
            call = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", query)
            assert call, f"{path.name}: variable {variable['name']} is not label_values(...)"
            found.append((f"{path.name} / ${variable['name']}", call.group(1)))
            found.append((f"{path.name} / ${variable['name']} label", f"x{{{call.group(2)}=''}}"))
    rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    for group in rules["groups"]:
        for rule in group["rules"]:
            found.append((f"rule {rule.get('alert') or rule.get('record')}", rule["expr"]))
    return found


def test_every_query_names_an_exported_metric_and_its_labels() -> None:
    product = exported()
    records = recorded()
    checked = 0
    for where, expr in expressions():
        selected = queried(expr)
        assert selected, f"no metric in {where}: {expr}"
        for name, labels in selected:
            if name == "x":  # a variable's label, checked against its own metric below
                continue
            if name in records:
                assert labels <= TARGET_LABELS | {"service", "queue"}, where
                continue
            known = product.get(name, ALLOWED_EXTERNAL.get(name))
            assert known is not None, f"{where} queries {name}, which nothing exports"
            assert labels <= known | TARGET_LABELS, (
                f"{where} matches {sorted(labels - known - TARGET_LABELS)} on {name}, "
                f"which carries {sorted(known)}"
            )
            checked += 1
    assert checked > 50


def test_variable_labels_exist_on_their_metric() -> None:
    product = exported()
    for path in DASHBOARDS:
        board = json.loads(path.read_text(encoding="utf-8"))
        for variable in board["templating"]["list"]:
            metric, label = re.fullmatch(
                r"label_values\(([a-z_]+)(?:\{[^}]*\})?,\s*(\w+)\)", variable["query"]["query"]
            ).groups()  # type: ignore[union-attr]
            known = product.get(metric, ALLOWED_EXTERNAL.get(metric, set()))
            assert label in known | TARGET_LABELS, f"{path.name}: ${variable['name']}"


def test_the_five_dashboards_have_template_variables_and_distinct_uids() -> None:
    boards = [json.loads(path.read_text(encoding="utf-8")) for path in DASHBOARDS]
    uids = {board["uid"] for board in boards}
    assert {
        "prepaid-overview",
        "prepaid-field",
        "prepaid-money",
        "prepaid-commands",
        "prepaid-platform",
    } <= uids
    assert len(uids) == len(boards)
    for board in boards:
        assert board["templating"]["list"], f"{board['uid']} has no template variable"


def test_the_parser_finds_names_and_matchers() -> None:
    expr = (
        'sum by (job) (rate(prepaid_http_request_seconds_count{status=~"5.."}[5m]))'
        " / on (job) group_left up"
    )
    assert queried(expr) == [("prepaid_http_request_seconds_count", {"status"}), ("up", set())]
