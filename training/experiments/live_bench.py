"""``deepcredit bench live``: the live flow Kafka to Kafka on the real broker, with the model and
with the model step replaced by a pass-through, measured in one run.

Throughput: a clickstream is loaded onto a fresh clicks topic, then the flow (recovery on, as in
production) reads it to the end; events/s = events / wall time of the run, median of repeats.
Latency: ``deepcredit serve`` tails a fresh topic while the stream is replayed at a steady rate
below capacity; post-to-score latency = Kafka timestamp of the score minus that of its post
(both stamped by their producers on this machine's clock), for the posts produced after the
flow's first score (its start-up is not latency).
"""

from __future__ import annotations

import contextlib
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import msgspec
import numpy as np
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import run_main

from dataflow.flow import FlowConfig, build_flow
from deepcredit.kafka_io import read_to_end
from deepcredit.records import RiskRecord, Score
from deepcredit.replay import replay
from deepcredit.settings import KafkaSettings, Topics
from deepcredit.thresholds import DEFAULT_THRESHOLDS
from deepcredit.topics import delete_topics, ensure_topics, topic_specs
from deepcredit.waiting import wait_until
from scorer.artifact import load_scorer
from scorer.user_state import encode_state
from state.recovery_store import read_states
from training.experiments.config import LiveBenchConfig
from training.experiments.processes import serve_process

__all__ = ["LiveBenchConfig", "run_live_bench"]

#: The flow as served (model, recovery on); the same without the model step; the same without
#: recovery snapshots (what they cost).
VARIANTS = ("model", "pass_through", "model_no_recovery")


@contextmanager
def _fresh_topics(cfg: LiveBenchConfig) -> Iterator[Topics]:
    """Six new topics for one run, deleted after it (each run starts from empty topics)."""
    topics = Topics.from_prefix(f"bench-{uuid.uuid4().hex[:8]}-")
    ensure_topics(cfg.kafka, topic_specs(topics, partitions=cfg.partitions))
    try:
        yield topics
    finally:
        delete_topics(cfg.kafka, topics.names())


def _throughput_once(cfg: LiveBenchConfig, variant: str) -> dict:
    with _fresh_topics(cfg) as topics:
        return _throughput(cfg, variant, topics)


def _throughput(cfg: LiveBenchConfig, variant: str, topics: Topics) -> dict:
    sent = replay(cfg.events, cfg.kafka, topics.clicks, limit=cfg.limit, progress=False).sent
    weights = None if variant == "pass_through" else load_scorer(cfg.model)
    with tempfile.TemporaryDirectory() as tmp:
        init_db_dir(Path(tmp), 1)
        recovery = None if variant == "model_no_recovery" else RecoveryConfig(Path(tmp))
        flow = build_flow(FlowConfig(cfg.kafka, topics, tail=False), weights,
                          lambda: DEFAULT_THRESHOLDS)  # fmt: skip
        started = time.perf_counter()
        run_main(flow, epoch_interval=timedelta(seconds=cfg.snapshot_s),
                 recovery_config=recovery)  # fmt: skip
        seconds = time.perf_counter() - started
        states = read_states(Path(tmp)) if variant == "model" else {}
    scores = len(read_to_end(cfg.kafka, topics.risk_scores))
    sizes = [len(encode_state(s)) for s in states.values()]
    return {"events": sent, "scores": scores, "seconds": round(seconds, 3),
            "events_per_s": round(sent / seconds, 1),
            "state_bytes": _summary(sizes) if sizes else None}  # fmt: skip


def _latency(cfg: LiveBenchConfig, variant: str, log: Path) -> dict:
    with _fresh_topics(cfg) as topics:
        return _latency_on(cfg, variant, log, topics)


def _latency_on(cfg: LiveBenchConfig, variant: str, log: Path, topics: Topics) -> dict:
    model = ["--model", str(cfg.model)] if variant == "model" else ["--pass-through"]
    proc = serve_process(cfg.kafka, topics, [*model, "--metrics-port", "0", "--snapshot-seconds",
                                             str(cfg.snapshot_s)], log)  # fmt: skip
    try:
        time.sleep(3.0)  # let it start and assign its partitions (it reads from the beginning)
        report = replay(cfg.events, cfg.kafka, topics.clicks, rate=cfg.latency_rate,
                        limit=cfg.latency_events, progress=cfg.progress)  # fmt: skip
        posts = {}
        for m in read_to_end(cfg.kafka, topics.clicks):
            if b'"post"' in m.value():
                posts[msgspec.json.decode(m.value())["event_id"]] = m.timestamp()[1]
        scores: list = []

        def all_scored() -> bool:
            nonlocal scores
            scores = read_to_end(cfg.kafka, topics.risk_scores)
            return len(scores) >= len(posts)

        with contextlib.suppress(TimeoutError):  # measure what was scored by then
            wait_until(all_scored, 60, 0.5)
    finally:
        proc.terminate()
        proc.wait(30)
    # Startup is not latency: count posts produced after the flow's first score was written.
    first_score_ms = min(m.timestamp()[1] for m in scores)
    lat = []
    for m in scores:
        s = msgspec.json.decode(m.value(), type=RiskRecord)
        if isinstance(s, Score) and posts.get(s.event_id, -1) > first_score_ms:
            lat.append((m.timestamp()[1] - posts[s.event_id]) / 1000.0)
    return {"rate": cfg.latency_rate, "achieved_rate": round(report.rate, 1),
            "events": report.sent, "posts": len(posts),
            "scored": len({msgspec.json.decode(m.value())["event_id"] for m in scores}),
            "measured": len(lat),
            "p50_ms": round(1000 * float(np.percentile(lat, 50)), 2),
            "p99_ms": round(1000 * float(np.percentile(lat, 99)), 2)}  # fmt: skip


def _summary(values: list[int]) -> dict:
    return {"users": len(values), "median": int(statistics.median(values)),
            "p99": int(np.percentile(values, 99)), "max": max(values)}  # fmt: skip


def run_live_bench(cfg: LiveBenchConfig, log: Path) -> dict:
    """All measurements, model and pass-through interleaved repeat by repeat (so a slow spell
    of a shared machine hits both)."""
    runs: dict[str, list[dict]] = {v: [] for v in VARIANTS}
    for r in range(cfg.repeats):
        for v in VARIANTS:
            runs[v].append(_throughput_once(cfg, v))
            if cfg.progress:
                print(f"throughput {v} #{r + 1}: {runs[v][-1]['events_per_s']:,.0f} events/s",
                      flush=True)  # fmt: skip
    throughput = {v: {"median_events_per_s": statistics.median(x["events_per_s"]
                                                                for x in runs[v]),
                      "runs": runs[v]} for v in VARIANTS}  # fmt: skip
    latency = {v: _latency(cfg, v, log) for v in ("model", "pass_through")}
    ratio = (throughput["model"]["median_events_per_s"]
             / throughput["pass_through"]["median_events_per_s"])  # fmt: skip
    snapshots = (throughput["model"]["median_events_per_s"]
                 / throughput["model_no_recovery"]["median_events_per_s"])  # fmt: skip
    return {"throughput": throughput, "model_over_pass_through": round(ratio, 3),
            "recovery_over_no_recovery": round(snapshots, 3),
            "latency": latency, "state_bytes_per_user": runs["model"][-1]["state_bytes"],
            "config": {k: str(v) if isinstance(v, Path | KafkaSettings) else v
                       for k, v in vars(cfg).items()}}  # fmt: skip
