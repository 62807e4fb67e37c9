"""The Grafana dashboard shipped in deploy/grafana: JSON in Grafana's dashboard model, every
query valid PromQL (Prometheus's own parser, through ``promtool check rules``) naming only
metrics, labels and label values the flow registers, every variable defined."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.deploy.promql import problems, registered

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "deepcredit.json"
PANEL_TYPES = {"row", "timeseries", "stat", "table", "gauge", "bargauge", "text"}
#: Grafana's own variables, and what stands in for each when the query is parsed.
BUILTINS = {"__rate_interval": "1m", "__interval": "1m", "__range": "1h"}
#: Queries the dashboard must show (issue 15, item 5).
SHOWN = {
    "decision mix": "deepcredit_decisions_total",
    "scores per second": "deepcredit_scores_total",
    "post-to-score latency": "deepcredit_event_to_score_seconds_bucket",
    "consumer lag": "bytewax_kafka_consumer_lag",
    "dead letters": "deepcredit_dead_letters_total",
    "drift alerts": "deepcredit_drift_alerts_total",
}


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def panels(dashboard: dict) -> list[dict]:
    out = []
    for p in dashboard["panels"]:
        out.append(p)
        out += p.get("panels", [])  # a collapsed row holds its panels
    return out


def queries(dashboard: dict) -> list[tuple[str, str]]:
    return [(p["title"], t["expr"]) for p in panels(dashboard) for t in p.get("targets", [])]


def test_the_dashboard_is_in_grafanas_model(dashboard: dict) -> None:
    assert isinstance(dashboard["title"], str) and dashboard["title"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", dashboard["uid"])
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 36
    assert {"from", "to"} <= set(dashboard["time"])
    assert isinstance(dashboard["templating"]["list"], list)
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids)) and all(isinstance(i, int) for i in ids)
    for p in panels(dashboard):
        assert p["type"] in PANEL_TYPES, p["title"]
        g = p["gridPos"]
        assert all(isinstance(g[k], int) and g[k] >= 0 for k in ("x", "y", "w", "h")), p
        assert g["w"] >= 1 and g["h"] >= 1 and g["x"] + g["w"] <= 24, p["title"]
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert refs and len(refs) == len(set(refs)), p["title"]
        assert all(t["expr"].strip() for t in p["targets"]), p["title"]


def test_every_variable_a_query_uses_is_defined(dashboard: dict) -> None:
    defined = {v["name"] for v in dashboard["templating"]["list"]} | set(BUILTINS)
    assert {"datasource", "job"} <= defined
    used = {m for _, expr in queries(dashboard) for m in re.findall(r"\$\{?(\w+)", expr)}
    assert used <= defined, used - defined
    assert "job" in used  # every query is scoped to the selected job


def test_every_query_names_only_what_the_code_registers(dashboard: dict) -> None:
    known = registered()
    for title, expr in queries(dashboard):
        assert problems(expr, known) == [], title
    named = " ".join(expr for _, expr in queries(dashboard))
    for what, metric in SHOWN.items():
        assert metric in named, f"the dashboard does not show the {what}"


def test_every_query_parses_as_promql(dashboard: dict, promtool: str, tmp_path: Path) -> None:
    """Each query, variables filled in, as a recording rule: promtool parses each one."""
    values = {**BUILTINS, "job": "deepcredit", "datasource": "prometheus"}
    rules = []
    for i, (_, expr) in enumerate(queries(dashboard)):
        filled = re.sub(r"\$\{?(\w+)\}?", lambda m: values[m.group(1)], expr)
        rules.append({"record": f"dashboard:query_{i}", "expr": filled})
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))  # YAML too
    check = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True,
                           text=True)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"SUCCESS: {len(rules)} rules found" in check.stdout
