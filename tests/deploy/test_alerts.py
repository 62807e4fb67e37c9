"""The alerting rules shipped in deploy/prometheus: Prometheus's own checker and unit-test runner
(``promtool``, from Debian's prometheus package) pass on them, every alert is shown firing and
not firing there, and every metric and label they name is one the flow registers."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from tests.deploy.promql import names, problems, registered

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
RULE_TESTS = ("alerts_test.yml", "alerts_decisions_test.yml")


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
        assert problems(rule["expr"], known) == [], rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_the_check_catches_a_renamed_metric_a_wrong_label_or_value() -> None:
    known = registered()
    assert problems("increase(deepcredit_scored_total[5m]) > 0", known) == [
        "unknown metric deepcredit_scored_total"]  # fmt: skip
    assert problems('rate(deepcredit_decisions_total{verdict="decline"}[1h])', known) == [
        "deepcredit_decisions_total has no label 'verdict'"]  # fmt: skip
    assert problems('rate(deepcredit_decisions_total{decision="refer"}[1h])', known) == [
        "decision='refer' is not a value the code gives"]  # fmt: skip
    assert problems("sum by (tenant) (deepcredit_scores_total)", known) == [
        "a grouping has no label 'tenant'"]  # fmt: skip
    assert names('sum by (job) (rate(deepcredit_scores_total{job="$job"}[$__rate_interval]))') == {
        "deepcredit_scores_total"}  # fmt: skip
