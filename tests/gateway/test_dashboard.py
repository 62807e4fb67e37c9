"""The risk-operations dashboard (``deepcredit dashboard``) against a real flow on the real
broker, looked at in a real browser (Debian's headless Chromium): the decision counts the flow
wrote, the thresholds set through the CLI and their change, a drift alert with its reference,
current value, direction and severity; and a screenshot of the page."""

from __future__ import annotations

import re
import shutil
import signal
import struct
import subprocess
import time
import uuid
from collections import Counter
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import numpy as np
import pytest

from deepcredit.codec import decode_click, encode
from deepcredit.events import Activity, ClickEvent
from deepcredit.kafka_io import delivering, produce
from deepcredit.records import Decision, DriftAlert, Monitor, Score, kafka_headers
from deepcredit.settings import KafkaSettings, Topics
from deepcredit.thresholds import DEFAULT_THRESHOLDS
from deepcredit.waiting import wait_until
from deploy.cli import main
from gateway.config import DashboardConfig
from gateway.dashboard import board, create_app, page
from gateway.panels import score_distribution
from gateway.watch import View
from scorer.artifact import load_scorer
from scorer.registry import ModelRegistry
from tests.ports import free_port
from tests.serving import asgi_server, http_status, serve_process
from tests.streams import clicks_lines, expected_scores, read_risk, read_scores, send


def test_the_page_of_nothing_says_so() -> None:
    """Before any topic holds a record (a new deployment), every panel says what is missing."""
    view = View(at=time.time(), scores=[], not_scored={}, outcomes={}, clicks_as_of=None,
                alerts=[], changes=[], model_events=[], thresholds=DEFAULT_THRESHOLDS,
                problems=["risk-scores: no such topic"])  # fmt: skip
    text = page(board(view, DashboardConfig()), 5.0)
    for said in ("no scored posts yet", "no drift alert on the topic", "no post scored yet",
                 "not read: risk-scores: no such topic", "built-in defaults are in force",
                 "<meta http-equiv='refresh' content='5'>"):  # fmt: skip
        assert said in text


def test_the_score_distribution_splits_reference_and_current_by_event_time() -> None:
    day = 86_400.0
    scores = [Score(event_id=str(i), user_id="u", loan_id=f"l{i}", p_delinquent=0.1 + i / 1e4,
                    p_default=0.5, decision=Decision.APPROVE, thresholds_version=0,
                    model_version="m2" if i % 10 == 0 else "m1", event_ts=1.5e9 + i * day,
                    scored_at=1.8e9 + i, prior_events=1, history_days=1.0)
              for i in range(100)]  # fmt: skip
    d = score_distribution(scores, "m1", reference_days=30, window_days=7)
    # m1: days 1 to 99 but every tenth; reference: days 1 to 30; current: days 92 to 99.
    assert (d.reference_n, d.current_n) == (27, 8)
    assert (d.reference_from, d.current_to) == (1.5e9 + day, 1.5e9 + 99 * day)
    for sig in d.signals:  # every post in a bin, a constant signal too
        assert (sum(sig.reference), sum(sig.current)) == (27, 8), sig.name
        assert sig.edges[0] < sig.edges[-1]
    assert d.signals[0].reference_mean == 0.5


def dashboard(cfg: DashboardConfig) -> AbstractContextManager[str]:
    """The dashboard on a real uvicorn in a thread; yields its base URL."""
    return asgi_server(create_app(cfg), "dashboard")


def _alert(model_version: str) -> DriftAlert:
    t = 1.45e9
    return DriftAlert(alert_id=f"a-{uuid.uuid4().hex[:8]}", monitor=Monitor.SCORES,
                      detector="ADWIN", signal="p_default", model_version=model_version,
                      event_ts=t, events_seen=1234, detected_at=time.time(), value=0.021,
                      detail="p_default up: written by the dashboard test",
                      reference_value=0.0123, reference_n=250, reference_from_ts=t - 9e6,
                      reference_to_ts=t - 8e6, current_value=0.0456, window_n=250,
                      window_from_ts=t - 1e6, direction="up", severity="high")  # fmt: skip


@pytest.mark.kafka
def test_the_page_shows_what_the_flow_scored(
    kafka: KafkaSettings,
    topics: Topics,
    model_dir: Path,
    clicks_file: Path,
    chromium: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DEEPCREDIT_TOPIC_PREFIX", topics.thresholds.removesuffix("thresholds"))
    registry = ModelRegistry(tmp_path / "models")  # the model, promoted by hand
    shutil.copytree(model_dir, registry.root / model_dir.name)
    registry.promote(model_dir.name, by="risk-ops", reason="first model in service")
    port = free_port()
    flow = serve_process(kafka, topics, model_dir, "--metrics-port", str(port),
                         "--no-drift-monitors", log=tmp_path / "serve.log")  # fmt: skip
    cfg = DashboardConfig(kafka=kafka, topics=topics, refresh_s=5.0, registry=registry.root)
    try:
        with dashboard(cfg) as url:
            dom, shot, scores, model = _walk_through(kafka, topics, flow, port, url, model_dir,
                                                     clicks_file, chromium, tmp_path)  # fmt: skip
    finally:
        flow.send_signal(signal.SIGTERM)
        flow.wait(30)

    expected = Counter(s.decision.value for s in scores)
    for d in ("approve", "review", "decline"):
        assert re.search(f'id="count-{d}">{expected[d]}<', dom), d
    assert dom.count("<svg") >= 3  # decisions, score distribution, bad rates
    assert "thresholds version 1, set by risk-ops" in dom  # in force
    assert "dashboard walk-through" in dom  # the change, with its reason
    alert_row = re.search(r"<tr class=\"sev-high\">(.*?)</tr>", dom)
    assert alert_row is not None, "the alert's row"
    for said in ("p_default", "up", "0.0123 (250 obs.", "0.0456 (250 obs.", model):
        assert said in alert_row.group(1), said
    assert f"Registry: current model {model}" in dom and "first model in service" in dom

    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (1280, 2000)  # IHDR: width, height
    from PIL import Image

    colours = Image.open(shot).convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50, "a blank page"
    white = sum(n for n, c in colours if c == (255, 255, 255))
    assert white < 0.97 * 1280 * 2000, "a blank page"


def _walk_through(
    kafka: KafkaSettings,
    topics: Topics,
    flow: subprocess.Popen,
    port: int,
    url: str,
    model_dir: Path,
    clicks_file: Path,
    chromium: str,
    tmp_path: Path,
) -> tuple[str, Path, list[Score], str]:
    """While the flow and the dashboard start: thresholds set through the CLI (with their
    audit record) at this model's quantiles of P(default) (a small model's probabilities sit
    close together), about 40% approved, 40% reviewed and 20% declined on any machine. Then the
    clicks through the flow, a drift alert on its topic, the dashboard caught up, and one
    browser run: the page's DOM and its screenshot."""
    lines = clicks_lines(clicks_file)
    events = [e for e in map(decode_click, lines) if isinstance(e, ClickEvent)]
    posts = {e.event_id for e in events if e.activity is Activity.POST}
    p_default = np.array([p for _, p in expected_scores(load_scorer(model_dir), events)[0]
                          .values()])  # fmt: skip
    review, decline = (f"{q:.9f}" for q in np.quantile(p_default, [0.4, 0.8]))
    assert main(["thresholds", "set", "--default-review", review, "--default-decline", decline,
                 "--delinquent-review", "0.99", "--delinquent-decline", "0.995", "--by",
                 "risk-ops", "--reason", "dashboard walk-through", "--yes",
                 "--bootstrap", kafka.bootstrap_servers]) == 0  # fmt: skip
    wait_until(lambda: flow.poll() is not None or http_status(f"http://127.0.0.1:{port}/readyz")
               == 200, 60, 0.1, what="the flow ready")  # fmt: skip
    assert flow.poll() is None, (tmp_path / "serve.log").read_text()[-2000:]
    send(kafka, topics.clicks, lines)
    wait_until(lambda: {r.event_id for r in read_risk(kafka, topics.risk_scores)} >= posts,
               60, 0.5, what="every post answered")  # fmt: skip
    scores = {s.event_id: s for s in read_scores(kafka, topics.risk_scores)}
    [model] = {s.model_version for s in scores.values()}
    alert = _alert(model)
    with delivering(kafka, 10) as producer:
        produce(producer, topics.drift_alerts, encode(alert), b"scores",
                headers=kafka_headers(alert))  # fmt: skip

    def shown() -> dict:
        b = httpx.get(f"{url}/dashboard.json", timeout=10).json()
        return b if b["posts"] == len(scores) and b["alerts"] and not b["loading"] else {}

    # The page follows the topics: the scores and the alert written after it started.
    b = wait_until(shown, 30, 0.3, what="the dashboard caught up")
    expected = Counter(s.decision.value for s in scores.values())
    assert b["decisions"]["totals"] == {d: expected[d] for d in
                                        ("approve", "review", "decline")}  # fmt: skip
    assert min(expected.values()) > 0, expected  # a mix of the three
    assert sum(w["approved"] for w in b["weeks"]) == expected["approve"]
    assert any(w["delinquent_labelled"] for w in b["weeks"])  # labels arrived
    assert b["distribution"]["reference_n"] > 0 and b["distribution"]["current_n"] > 0
    assert b["drift_reference"] == {"p_default": 0.0123}
    assert not b["problems"]

    shot = tmp_path / "dashboard.png"
    dom = subprocess.run([chromium, "--headless", "--disable-gpu", "--no-sandbox",
                          "--hide-scrollbars", "--window-size=1280,2000",
                          f"--screenshot={shot}", "--dump-dom", f"{url}/dashboard"],
                         capture_output=True, text=True, timeout=60, check=True).stdout  # fmt: skip
    return dom, shot, list(scores.values()), model
