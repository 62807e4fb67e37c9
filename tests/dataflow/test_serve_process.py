"""``deepcredit serve`` as operators run it: it stops cleanly on SIGTERM or SIGINT even when
started in the background by a script (which makes it ignore SIGINT), with one line and no
panic; its endpoint answers /metrics, /healthz and /readyz; a run to the end of the topic logs
its progress; and a second flow on a metrics port that is already taken fails at once with a
message that says why."""

from __future__ import annotations

import json
import signal
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from dataflow import metrics
from dataflow.endpoint import Endpoint
from dataflow.serve import _Readiness, _start_endpoint
from deepcredit.settings import KafkaSettings, Topics
from deepcredit.waiting import wait_until
from tests.dataflow.test_flow import scrape
from tests.ports import free_port
from tests.serving import serve_process
from tests.streams import BAD_MESSAGES, clicks_lines, send


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_background_flow_stops_cleanly_on_a_signal(
    kafka: KafkaSettings, topics: Topics, model_dir: Path, tmp_path: Path, signum: int
) -> None:
    port, log = free_port(), tmp_path / "serve.log"
    args = ("--metrics-port", str(port), "--recovery-dir", str(tmp_path / "recovery"))
    flow = serve_process(kafka, topics, model_dir, *args, log=log, like_background_job=True)
    try:
        wait_until(lambda: _get(port, "/readyz")[0] == 200, 60, what="the flow ready")
        flow.send_signal(signum)
        assert flow.wait(30) == 0, log.read_text()[-3000:]
    finally:
        flow.kill()
    assert not _answers(port)  # the port is free for the next flow
    text = log.read_text()
    # The stop is one line: no Rust panic from a worker that saw the signal, no backtrace.
    assert "panicked" not in text and "backtrace" not in text and "Traceback" not in text
    ours = [line for line in text.splitlines() if not line.startswith("%")]  # not librdkafka's
    assert ours[-1].endswith(f"stopped by {signal.Signals(signum).name}"), text[-3000:]


def test_the_endpoint_serves_metrics_liveness_and_readiness(
    kafka: KafkaSettings, topics: Topics, model_dir: Path, tmp_path: Path
) -> None:
    port, log = free_port(), tmp_path / "serve.log"
    flow = serve_process(kafka, topics, model_dir, "--metrics-port", str(port), log=log)
    try:
        _, body = wait_until(lambda: _ok(_get(port, "/readyz")), 60, what="the flow ready")
        assert json.loads(body) == {"ready": True, "missing": []}
        assert _get(port, "/healthz") == (200, b"ok\n")
        metrics = scrape(port)
        assert metrics[("deepcredit_clicks_partitions", ())] == 3
        assert _get(port, "/health")[0] == _get(port, "/")[0] == 404
    finally:
        flow.send_signal(signal.SIGTERM)
        assert flow.wait(30) == 0, log.read_text()[-3000:]


def test_readiness_says_what_is_missing() -> None:
    ready, port = _Readiness(), free_port()
    partitions = REGISTRY.get_sample_value("deepcredit_clicks_partitions")
    metrics.CLICKS_PARTITIONS.set(0)
    endpoint = Endpoint(port, ready.missing)
    try:
        status, body = _get(port, "/readyz")
        ready.model = True
        metrics.CLICKS_PARTITIONS.set(3)
        assert ready.missing() == ["thresholds"]
    finally:
        endpoint.close()
        metrics.CLICKS_PARTITIONS.set(partitions)
    assert status == 503
    assert json.loads(body) == {"ready": False,
                                "missing": ["model", "kafka_partitions", "thresholds"]}  # fmt: skip


def test_the_ready_gauge_follows_readiness() -> None:
    """deepcredit_ready, what an alerting rule sees of /readyz, is computed on each scrape
    (a running flow reports 1: tests/dataflow/test_prometheus.py)."""
    ready, port = _Readiness(), free_port()
    partitions = REGISTRY.get_sample_value("deepcredit_clicks_partitions")
    endpoint = _start_endpoint(port, ready)
    try:
        metrics.CLICKS_PARTITIONS.set(0)
        assert b"\ndeepcredit_ready 0.0\n" in urllib.request.urlopen(
            f"http://127.0.0.1:{port}/metrics", timeout=5).read()  # fmt: skip
        ready.model = True
        metrics.CLICKS_PARTITIONS.set(3)
        assert ready.missing() == ["thresholds"]
        assert REGISTRY.get_sample_value("deepcredit_ready") == 0.0
    finally:
        endpoint.close()
        metrics.CLICKS_PARTITIONS.set(partitions)


def test_a_run_to_the_end_logs_its_progress_and_a_summary(
    kafka: KafkaSettings, topics: Topics, clicks_file: Path, model_dir: Path, tmp_path: Path
) -> None:
    lines = clicks_lines(clicks_file)
    send(kafka, topics.clicks, lines + list(BAD_MESSAGES))
    log = tmp_path / "serve.log"
    flow = serve_process(kafka, topics, model_dir, "--until-end", "--metrics-port", "0",
                         "--progress-seconds", "0.5", log=log)  # fmt: skip
    assert flow.wait(120) == 0, log.read_text()[-3000:]
    text = log.read_text()
    assert "dataflow.progress progress: " in text  # while it runs
    read = len(lines) + len(BAD_MESSAGES)
    summary = [line for line in text.splitlines() if " done in " in line]
    assert len(summary) == 1
    assert f"{read:,} events read ({len(BAD_MESSAGES)} dead-lettered, 0 resends skipped)" in (
        summary[0])  # fmt: skip
    assert f"{topics.clicks} lag 0 (" in summary[0]


def test_a_second_flow_on_a_taken_metrics_port_fails_with_a_clear_error(
    kafka: KafkaSettings, topics: Topics, model_dir: Path, tmp_path: Path
) -> None:
    log = tmp_path / "serve.log"
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        flow = serve_process(kafka, topics, model_dir, "--metrics-port", str(port), log=log)
        try:
            assert flow.wait(60) == 1
        finally:
            flow.kill()
    text = log.read_text()
    assert f"cannot serve metrics on 127.0.0.1:{port}" in text
    assert "is another 'deepcredit serve' still running?" in text
    assert "Traceback" not in text


def _answers(port: int) -> bool:
    try:
        return bool(scrape(port))
    except OSError:
        return False


def _get(port: int, path: str) -> tuple[int, bytes]:
    """Status and body of GET ``path``; (0, b"") when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return 0, b""


def _ok(reply: tuple[int, bytes]) -> tuple[int, bytes] | None:
    return reply if reply[0] == 200 else None
