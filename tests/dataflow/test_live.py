"""The flow started the Bytewax way (``python -m bytewax.run "dataflow.serve:from_env()"``),
tailing the clicks topic: thresholds changed by operations apply to the next scores without a
restart, and the metrics endpoint serves our metrics and Bytewax's consumer lag."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from deepcredit.events import ClickEvent
from deepcredit.settings import KafkaSettings, Topics
from deepcredit.thresholds import DEFAULT_THRESHOLDS, set_thresholds
from deepcredit.waiting import wait_until
from tests.dataflow.test_flow import scrape
from tests.ports import free_port
from tests.streams import clicks_lines, read_scores, send


def test_thresholds_change_live_and_metrics_are_served(
    kafka: KafkaSettings, topics: Topics, clicks_file: Path, clicks: list[ClickEvent],
    model_dir: Path, tmp_path: Path,
) -> None:  # fmt: skip
    port = free_port()
    env = {**os.environ, "DEEPCREDIT_MODEL": str(model_dir),
           "DEEPCREDIT_BOOTSTRAP": kafka.bootstrap_servers,
           "DEEPCREDIT_TOPIC_PREFIX": topics.clicks.removesuffix("clicks"),
           "DEEPCREDIT_METRICS_PORT": str(port)}  # fmt: skip
    log = tmp_path / "flow.log"
    with open(log, "wb") as out:
        flow = subprocess.Popen([sys.executable, "-m", "bytewax.run", "dataflow.serve:from_env()"],
                                env=env, stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    lines = clicks_lines(clicks_file)
    half = len(lines) // 2
    try:
        send(kafka, topics.clicks, lines[:half])
        first = wait_until(lambda: read_scores(kafka, topics.risk_scores), 60,
                           what="first scores")
        assert {s.thresholds_version for s in first} == {0}

        changed = set_thresholds(kafka, topics.thresholds, delinquent_review=0.05,
                                 delinquent_decline=0.1, default_review=0.01,
                                 default_decline=0.02, updated_by="test", note="test",
                                 timeout_s=10)  # fmt: skip
        metrics = wait_until(lambda: (m := scrape(port))[("deepcredit_thresholds_version", ())]
                             == changed.version and m, 30, what="thresholds applied")  # fmt: skip
        latency = metrics[("deepcredit_thresholds_apply_latency_seconds", ())]
        assert 0 < latency < 5

        send(kafka, topics.clicks, lines[half:])
        posts = sum(1 for e in clicks if e.activity == "post")
        scores = wait_until(lambda: (s := read_scores(kafka, topics.risk_scores))
                            and len(s) >= posts and s, 60, what="all posts scored")  # fmt: skip
        by_version = {0: DEFAULT_THRESHOLDS, changed.version: changed}
        assert all(
            s.decision
            == by_version[s.thresholds_version].decide(
                p_delinquent=s.p_delinquent, p_default=s.p_default
            )
            for s in scores
        )
        second_half = {e.event_id for e in clicks[half:]}
        assert {s.thresholds_version for s in scores if s.event_id in second_half} == {
            changed.version
        }

        metrics = scrape(port)
        lag = [v for (name, labels), v in metrics.items() if name == "bytewax_kafka_consumer_lag"]
        assert lag and all(v >= 0 for v in lag)
        assert (
            metrics[("deepcredit_model_info", (("hidden_size", "8"), ("version", model_dir.name)))]
            == 1
        )
    finally:
        flow.terminate()
        flow.wait(20)
