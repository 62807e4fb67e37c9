"""A real Prometheus server (Debian's package) scrapes ``deepcredit serve``'s endpoint while the
flow scores a stream from the real broker; its query API then reports our counters with the
values the flow wrote to Kafka, and it loads and evaluates the shipped alerting rules
(deploy/prometheus/alerts.yml) against the live series."""

from __future__ import annotations

import json
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

from deepcredit.events import ClickEvent
from deepcredit.settings import KafkaSettings, Topics
from deepcredit.waiting import wait_until
from tests.ports import free_port
from tests.serving import serve_process
from tests.streams import clicks_lines, read_scores, send

ALERTS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"


def test_prometheus_scrapes_the_flow(
    kafka: KafkaSettings, topics: Topics, clicks_file: Path, clicks: list[ClickEvent],
    model_dir: Path, prometheus: str, tmp_path: Path,
) -> None:  # fmt: skip
    metrics_port, prom_port = free_port(), free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: ['{ALERTS}']\n"
        "scrape_configs:\n"
        "  - job_name: deepcredit\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{metrics_port}']}}]\n"
    )
    with open(tmp_path / "prometheus.log", "wb") as log:
        server = subprocess.Popen(
            [prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prom_port}"],
            stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
    flow = serve_process(kafka, topics, model_dir, "--metrics-port", str(metrics_port),
                         log=tmp_path / "serve.log")  # fmt: skip
    try:
        send(kafka, topics.clicks, clicks_lines(clicks_file))
        posts = sum(1 for e in clicks if e.activity == "post")
        wait_until(lambda: len(read_scores(kafka, topics.risk_scores)) >= posts, 90, what="scores")

        def api(path: str) -> dict:
            body = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{prom_port}/api/v1/"
                                                     + path, timeout=5).read())  # fmt: skip
            assert body["status"] == "success", body
            return body["data"]

        def query(expr: str) -> list[dict]:
            return api("query?" + urllib.parse.urlencode({"query": expr}))["result"]

        def scraped_value(expr: str) -> float | None:
            try:
                result = query(expr)
            except OSError:
                return None  # the server is still starting
            return float(result[0]["value"][1]) if result else None

        wait_until(lambda: scraped_value("deepcredit_scores_total") == posts, 60,
                   what=f"Prometheus seeing {posts} scores")  # fmt: skip
        assert scraped_value('up{job="deepcredit"}') == 1
        assert scraped_value("sum(deepcredit_decisions_total)") == posts
        assert scraped_value("sum(deepcredit_events_consumed_total)") == len(clicks)
        version = query("deepcredit_model_info")[0]["metric"]["version"]
        assert version == model_dir.name
        assert query("bytewax_kafka_consumer_lag")  # Bytewax's own gauge comes through too
        assert scraped_value('deepcredit_ready{job="deepcredit"}') == 1

        # The shipped rules load, and each evaluates without error on the live series.
        def rules() -> list[dict]:
            return [r for g in api("rules?type=alert")["groups"] for r in g["rules"]]

        never = "0001-01-01T00:00:00Z"  # Prometheus's lastEvaluation before the first one
        wait_until(lambda: rules() and all(r["lastEvaluation"] != never and r["health"] == "ok"
                                           for r in rules()),
                   30, what="every alerting rule evaluated")  # fmt: skip
        assert {r["name"] for r in rules()} >= {"DeepCreditFlowDown", "DeepCreditNoScores",
                                                  "DeepCreditDriftAlert"}  # fmt: skip
        # A rule evaluated before the first successful scrape holds "flow down" pending; once
        # the flow is scraped up and ready, the next evaluations clear both, pending or firing.
        down = {"DeepCreditFlowDown", "DeepCreditFlowNotReady"}
        wait_until(lambda: not {a["labels"]["alertname"] for a in api("alerts")["alerts"]} & down,
                   30, what="no flow-down or not-ready alert, pending or firing")  # fmt: skip
    finally:
        flow.terminate()
        server.terminate()
        flow.wait(20)
        server.wait(20)
