"""``deepcredit bench live`` on a tiny stream: it runs the real flow and writes sane numbers."""

from __future__ import annotations

import json
from pathlib import Path

from confluent_kafka.admin import AdminClient

from deepcredit.settings import KafkaSettings
from deploy.cli import main
from training.experiments.live_bench import MIN_STEADY_SPAN_S


def test_bench_live_measures_the_flows_and_the_plain_loop(
    kafka: KafkaSettings, clicks_file: Path, model_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "live.json"
    args = ["bench", "live", "--events", str(clicks_file), "--model", str(model_dir),
            "--bootstrap", kafka.bootstrap_servers, "--limit", "1500", "--repeats", "1",
            "--rate", "400", "--latency-events", "1200", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    result = json.loads(out.read_text())
    for variant in ("model", "pass_through", "model_no_recovery", "model_default_gc",
                    "model_drift_sample", "plain_loop", "plain_loop_no_model"):  # fmt: skip
        [run] = result["throughput"][variant]["runs"]
        assert run["events"] == 1500 and run["events_per_s"] > 0
    posts = result["throughput"]["model"]["runs"][0]["scores"]
    for variant in ("pass_through", "model_drift_sample", "plain_loop", "plain_loop_no_model"):
        assert result["throughput"][variant]["runs"][0]["scores"] == posts > 0
    for variant, x in result["throughput"].items():  # the steady rate leaves start-up out
        for run in x["runs"]:
            # so short a stream may be scored in one output batch, in the same millisecond
            assert 0 <= run["scoring_seconds"] < run["seconds"], variant
            if run["scoring_seconds"] < MIN_STEADY_SPAN_S:
                assert run["steady_events_per_s"] is None, variant
            else:
                assert run["steady_events_per_s"] > run["events_per_s"], variant
            assert run["cpu_us_per_event"] > 0, variant
    assert set(result["cpu"]) == set(result["steady"])
    assert all(r > 0 for r in result["cpu"].values())
    assert set(result["steady"]) == {"model_over_pass_through", "model_over_plain_loop",
                                     "pass_through_over_plain_loop_no_model",
                                     "drift_sample_over_plain_loop"}  # fmt: skip
    assert all(r is None or r > 0 for r in result["steady"].values())
    t = {v: x["median_events_per_s"] for v, x in result["throughput"].items()}
    assert result["model_over_plain_loop"] == round(t["model"] / t["plain_loop"], 3)
    assert result["model_over_pass_through"] == round(t["model"] / t["pass_through"], 3)
    assert result["drift_sample_over_model"] == round(t["model_drift_sample"] / t["model"], 3)
    for variant in ("model", "pass_through"):
        lat = result["latency"][variant]
        assert lat["scored"] == lat["posts"] > 0 and lat["measured"] > 0
        assert 0 < lat["p50_ms"] <= lat["p99_ms"]
    assert result["state_bytes_per_user"]["median"] > 0
    assert result["machine"]["cpus"] >= 1
    admin = AdminClient(kafka.client_config())
    assert not [t for t in admin.list_topics(timeout=30).topics if t.startswith("bench-")]
