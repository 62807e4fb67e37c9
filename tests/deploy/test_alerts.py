"""The alerting rules shipped in deploy/prometheus: Prometheus's own checker and unit-test runner
(``promtool``, from Debian's prometheus package) pass on them, every alert is shown firing and
not firing there, and every metric and label they name is one the flow registers."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from deepcredit.events import Activity
from deepcredit.records import DeadLetterReason, Decision, Monitor
from scorer.monitors import InputMonitor, PerformanceMonitor, ScoreMonitor
from tests.conftest import debian_tool
from tests.deploy.promql import TARGET_LABELS, labels, names, registered

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
RULE_TESTS = ("alerts_test.yml", "alerts_decisions_test.yml")

#: The values our code gives each label that a rule matches on.
LABEL_VALUES = {
    "decision": {d.value for d in Decision},
    "reason": {r.value for r in DeadLetterReason},
    "activity": {a.value for a in Activity},
    "monitor": {m.value for m in Monitor},
    "signal": {s for m in (ScoreMonitor, InputMonitor, PerformanceMonitor) for s in m.SIGNALS},
}


@pytest.fixture(scope="module")
def promtool() -> str:
    """Path to promtool, which Debian's prometheus package installs with the server."""
    return debian_tool("promtool", "prometheus")


def alert_rules() -> list[dict]:
    groups = yaml.safe_load((RULES / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_promtool_checks_the_rules_and_their_unit_tests_pass(promtool: str) -> None:
    check = subprocess.run([promtool, "check", "rules", "alerts.yml"], cwd=RULES,
                           capture_output=True, text=True)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in check.stdout
    run = subprocess.run([promtool, "test", "rules", *RULE_TESTS], cwd=RULES,
                         capture_output=True, text=True)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count("SUCCESS") == len(RULE_TESTS)


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    fired, quiet = set(), set()
    for name in RULE_TESTS:
        for case in yaml.safe_load((RULES / name).read_text())["tests"]:
            for check in case["alert_rule_test"]:
                (fired if check["exp_alerts"] else quiet).add(check["alertname"])
    alerts = {rule["alert"] for rule in alert_rules()}
    assert alerts == fired, f"never shown firing: {alerts - fired}"
    assert alerts == quiet, f"never shown quiet: {alerts - quiet}"
    assert {"DeepCreditFlowDown", "DeepCreditFlowNotReady", "DeepCreditConsumerLagGrowing",
            "DeepCreditDeadLetterRate", "DeepCreditDeclineRateJump", "DeepCreditReviewRateJump",
            "DeepCreditNoScores", "DeepCreditDriftAlert"} <= alerts  # fmt: skip


def test_rules_name_only_metrics_and_labels_the_code_registers() -> None:
    known = registered()
    for rule in alert_rules():
        expr = rule["expr"]
        used = names(expr)
        assert used, f"{rule['alert']}: no metric found in {expr!r}"
        assert used <= set(known.series), f"{rule['alert']}: unknown {used - set(known.series)}"
        for metric, label, value in labels(expr):
            allowed = known.label_names() if metric is None else (
                (known.series[metric] or set()) | TARGET_LABELS)  # fmt: skip
            assert label in allowed, f"{rule['alert']}: {metric} has no label {label!r}"
            if value is not None and label in LABEL_VALUES:
                assert value in LABEL_VALUES[label], f"{rule['alert']}: {label}={value!r}"
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_the_check_catches_a_renamed_metric_or_label() -> None:
    known = registered()
    assert "deepcredit_scores_total" in known.series
    assert "deepcredit_scored_total" not in known.series
    assert names("increase(deepcredit_scored_total[5m]) > 0") == {"deepcredit_scored_total"}
    renamed = 'rate(deepcredit_decisions_total{verdict="decline"}[1h])'
    assert ("deepcredit_decisions_total", "verdict", "decline") in labels(renamed)
    assert "verdict" not in known.series["deepcredit_decisions_total"]
