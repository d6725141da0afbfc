"""The alerting and recording rules hold: promtool checks them and runs their unit tests (every
alert fires on the failure it names), every alert links to its section of docs/runbook.md,
prometheus.yml loads them, and the Alertmanager example is valid.

promtool comes with Debian's ``prometheus`` package (.ci/run installs it); amtool with
``prometheus-alertmanager``. Without them the tests that run them are skipped, not passed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
RULES = PROMETHEUS_DIR / "rules" / "prepaid.rules.yml"
RULE_TESTS = PROMETHEUS_DIR / "rules" / "prepaid.rules.test.yml"
ALERTMANAGER = PROMETHEUS_DIR / "alertmanager.example.yml"
RUNBOOK = ROOT / "docs" / "runbook.md"

# The failures issue 14 names, each with the alert that reports it.
REQUIRED_ALERTS = {
    "PrepaidMetersStale",
    "PrepaidMetersOffline",
    "PrepaidDTUDown",
    "PrepaidBillingLag",
    "PrepaidDeadLetterQueueNotEmpty",
    "PrepaidConsumerWaiting",
    "PrepaidOutboxBacklog",
    "PrepaidPaymentVerificationFailures",
    "PrepaidRelayDisagreement",
    "PrepaidCommandSecurityRefusals",
    "PrepaidServiceDown",
    "PrepaidDependencyDown",
    "PrepaidHighErrorRate",
}


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def alerts() -> list[dict[str, Any]]:
    return [rule for group in load(RULES)["groups"] for rule in group["rules"] if "alert" in rule]


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (apt-get install prometheus prometheus-alertmanager)")
    return path


def run(*args: str, cwd: Path) -> None:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{' '.join(args)}:\n{result.stdout}\n{result.stderr}"


def test_promtool_checks_the_rules() -> None:
    run(tool("promtool"), "check", "rules", RULES.name, cwd=RULES.parent)


def test_promtool_unit_tests_pass() -> None:
    run(tool("promtool"), "test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)


def test_prometheus_config_is_valid_and_loads_the_rules(tmp_path: Path) -> None:
    config = load(PROMETHEUS_DIR / "prometheus.yml")
    assert config["rule_files"] == ["/etc/prometheus/rules/prepaid.rules.yml"]
    # promtool resolves rule files on this machine: point them at the repository's copy.
    config["rule_files"] = [str(RULES)]
    copy = tmp_path / "prometheus.yml"
    copy.write_text(yaml.safe_dump(config), encoding="utf-8")
    run(tool("promtool"), "check", "config", str(copy), cwd=tmp_path)


def test_every_named_failure_has_an_alert_and_every_alert_fires_in_a_unit_test() -> None:
    names = [rule["alert"] for rule in alerts()]
    assert len(names) == len(set(names)), "an alert name repeats"
    assert set(names) >= REQUIRED_ALERTS, f"missing: {sorted(REQUIRED_ALERTS - set(names))}"
    fired = {
        case["alertname"]
        for test in load(RULE_TESTS)["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert set(names) <= fired, f"never shown firing: {sorted(set(names) - fired)}"


def runbook_anchors() -> set[str]:
    headings = re.findall(r"^#{2,3} (.+)$", RUNBOOK.read_text(encoding="utf-8"), re.MULTILINE)
    # GitHub's anchors: lower case, punctuation dropped, spaces as hyphens.
    return {re.sub(r"[^a-z0-9 _-]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_every_alert_is_labelled_and_links_to_its_runbook_section() -> None:
    anchors = runbook_anchors()
    for rule in alerts():
        name = rule["alert"]
        assert rule["labels"]["severity"] in {"page", "ticket"}, name
        assert rule["labels"]["area"] in {"platform", "field", "money", "commands"}, name
        assert rule["annotations"]["summary"], name
        link = rule["annotations"]["runbook_url"]
        assert link == f"docs/runbook.md#{name.lower()}", name
        assert name.lower() in anchors, f"docs/runbook.md has no section {name}"


def test_alertmanager_example_inhibits_a_dtus_meters_and_names_real_alerts() -> None:
    config = load(ALERTMANAGER)
    names = {rule["alert"] for rule in alerts()}
    quoted = re.compile(r'alertname=~?"([^"]+)"')
    for rule in config["inhibit_rules"]:
        for matcher in [*rule["source_matchers"], *rule["target_matchers"]]:
            for pattern in quoted.findall(matcher):
                assert set(pattern.split("|")) <= names, f"unknown alert in {matcher}"
    assert any(
        'alertname="PrepaidDTUDown"' in rule["source_matchers"]
        and any("PrepaidMetersOffline" in m for m in rule["target_matchers"])
        for rule in config["inhibit_rules"]
    ), "a DTU down does not inhibit its meters' alerts"
    grouped = set(config["route"]["group_by"])
    assert "area" in grouped


def test_amtool_checks_the_alertmanager_example() -> None:
    run(tool("amtool"), "check-config", str(ALERTMANAGER), cwd=ROOT)
