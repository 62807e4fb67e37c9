"""``deepcredit bench live``: the live flow Kafka to Kafka on the real broker, with the model and
with the model step replaced by a pass-through, and the plain loop (the ceiling), measured in
one run.

Throughput: a clickstream is loaded onto a fresh clicks topic, then the flow (recovery on, as in
production) reads it to the end; events/s = events / wall time of the run, median of repeats.
The wall time includes each run's start-up and shutdown (a flow's about a second here), so
each run also gives its steady rate: events / the time from its first score to its last, by
the scores' producer timestamps, and the ratios come both ways (``steady`` in the result).
And each run gives the CPU time of this process per event (every thread: the engine's,
librdkafka's; the broker is another process), with the ratios of those (``cpu``): a slow
spell of the shared machine stretches wall time far more than CPU time.
The plain loop (``plain_loop``) does what the flow does for a valid event without an engine:
one confluent-kafka consumer reading the topic in batches as the flow's source does, our
codec, each user's state advanced by our step as the flow's score step runs it (the repeat
check, then ``scorer.reasons.advance_with_reasons``: the model step and a post's reason codes),
a Score with its decision and reasons produced for each post by one producer, dead letters
produced too; no drift
monitors, metrics or recovery. It is the ceiling of the flow on this machine; without the
model (``plain_loop_no_model``) it shows what Kafka and the codec cost alone. The variants run
one after the other in each repeat (the order rotating from repeat to repeat), so a slow spell
of a shared machine hits all of them; each ratio is the median of the per-repeat ratios.
Latency: ``deepcredit serve`` tails a fresh topic while the stream is replayed at a steady rate
below capacity; post-to-score latency = Kafka timestamp of the score minus that of its post
(both stamped by their producers on this machine's clock), for the posts produced after the
flow's first score (its start-up is not latency).
"""

from __future__ import annotations

import contextlib
import gc
import os
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
from confluent_kafka import OFFSET_BEGINNING, KafkaError, Producer, TopicPartition

from dataflow import user_events
from dataflow.flow import FlowConfig, build_flow
from dataflow.records import Accepted
from dataflow.serve import tune_gc
from deepcredit.codec import decode_click, encode
from deepcredit.events import Activity
from deepcredit.kafka_io import (
    KafkaReadError,
    assigned_consumer,
    consumer_watermarks,
    delivering,
    produce,
    read_to_end,
)
from deepcredit.records import DeadLetter, RiskRecord, Score, kafka_headers, score_record
from deepcredit.replay import replay
from deepcredit.settings import KafkaSettings, Topics
from deepcredit.thresholds import DEFAULT_THRESHOLDS
from deepcredit.topics import delete_topics, ensure_topics, topic_specs
from deepcredit.waiting import wait_until
from scorer.artifact import load_scorer
from scorer.model import ModelWeights, warm_up
from scorer.monitor_config import UserSample
from scorer.reasons import advance_with_reasons
from scorer.steps import history_at
from scorer.user_state import Seen, UserState, encode_state, event_fingerprint, event_key
from state.recovery_store import read_states
from training.experiments.config import LiveBenchConfig
from training.experiments.processes import HOST, free_port, is_ready, serve_process

__all__ = ["LiveBenchConfig", "run_latency_pair", "run_live_bench"]

#: The flow as served (model, recovery on, the collector tuned as ``serve`` tunes it); the same
#: without the model step; the same without recovery snapshots, with CPython's default
#: collector, and with the drift monitors watching ``drift_sample`` of the users (what each
#: costs or spares); the plain loop with our step and without it.
VARIANTS = ("model", "pass_through", "model_no_recovery", "model_default_gc",
            "model_drift_sample", "plain_loop", "plain_loop_no_model")  # fmt: skip
#: The rate between a run's first and last score (``scoring_span``).
STEADY = "steady_events_per_s"
#: The shortest span between a run's first and last score that gives it a steady rate (s):
#: a hundred of the timestamps' milliseconds.
MIN_STEADY_SPAN_S = 0.1
#: CPU time of the benchmark's process per event over a run (all its threads: the engine's,
#: librdkafka's), start-up included; the broker is another process.
CPU = "cpu_us_per_event"
#: How long the plain loop waits for a message before it gives up on reaching the end.
_READ_TIMEOUT_S = 30.0


@contextmanager
def _fresh_topics(cfg: LiveBenchConfig) -> Iterator[Topics]:
    """Six new topics for one run, deleted after it (each run starts from empty topics)."""
    topics = Topics.from_prefix(f"bench-{uuid.uuid4().hex[:8]}-")
    ensure_topics(cfg.kafka, topic_specs(topics, partitions=cfg.partitions))
    try:
        yield topics
    finally:
        delete_topics(cfg.kafka, topics.names())


@contextmanager
def _collector(tuned: bool) -> Iterator[None]:
    """CPython's cyclic collector as ``serve`` tunes it (``dataflow.serve.tune_gc``) or as it
    was, for one run; as it was afterwards."""
    thresholds = gc.get_threshold()
    if tuned:
        tune_gc()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def _throughput_once(cfg: LiveBenchConfig, variant: str, weights: ModelWeights) -> dict:
    with _fresh_topics(cfg) as topics, _collector(variant != "model_default_gc"):
        if variant.startswith("plain_loop"):
            sent = replay(cfg.events, cfg.kafka, topics.clicks, limit=cfg.limit,
                          progress=False).sent  # fmt: skip
            model = None if variant == "plain_loop_no_model" else weights
            return _plain_loop(cfg, topics, model, sent)
        return _throughput(cfg, variant, topics, weights)


def _plain_loop(
    cfg: LiveBenchConfig, topics: Topics, weights: ModelWeights | None, sent: int
) -> dict:
    """The clicks topic read to its end by the plain loop (module docstring); ``weights=None``
    scores every post 0 like the pass-through flow. Timed from the consumer's creation to the
    last score acknowledged by the broker, as the flow's run is."""
    started, cpu = time.perf_counter(), time.process_time()
    consumer = assigned_consumer(cfg.kafka, **{"auto.offset.reset": "error"})
    states: dict[str, UserState] = {}
    version = "pass-through" if weights is None else weights.version
    events = 0
    try:
        pending = {p: high for p, (low, high) in consumer_watermarks(consumer, topics.clicks)
                   .items() if high > low}  # fmt: skip
        consumer.assign([TopicPartition(topics.clicks, p, OFFSET_BEGINNING) for p in pending])
        with delivering(cfg.kafka, 60.0) as producer:
            heard = time.monotonic()
            while pending:
                batch = consumer.consume(FlowConfig.batch_size, 0.5)
                if not batch:
                    if time.monotonic() - heard > _READ_TIMEOUT_S:
                        raise TimeoutError(f"{topics.clicks!r} not read to its end")
                    continue
                heard = time.monotonic()
                for m in batch:
                    if (error := m.error()) is not None:
                        if error.code() != KafkaError._PARTITION_EOF:
                            raise KafkaReadError(error.str())
                        continue
                    p, offset = m.partition(), m.offset()
                    end = pending.get(p)
                    if end is None or offset >= end:
                        continue
                    if offset >= end - 1:
                        del pending[p]
                    events += 1
                    _plain_step(producer, topics, weights, version, states, m.value(), m.key(),
                                p, offset)  # fmt: skip
    finally:
        consumer.close()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    if events != sent:
        raise RuntimeError(f"the plain loop read {events:,} events of {sent:,}")
    return {"events": sent, "seconds": round(seconds, 3), "events_per_s": round(sent / seconds, 1),
            "cpu_us_per_event": round(1e6 * cpu / sent, 2),
            **_scoring_span(cfg, topics, sent), "state_bytes": None}  # fmt: skip


def _plain_step(
    producer: Producer,
    topics: Topics,
    weights: ModelWeights | None,
    version: str,
    states: dict[str, UserState],
    value: bytes | None,
    key: bytes | None,
    partition: int,
    offset: int,
) -> None:
    """One message of the plain loop: decode, step, the score or dead letter produced."""
    event = decode_click(value, key=key, topic=topics.clicks, partition=partition,
                         offset=offset)  # fmt: skip
    if isinstance(event, DeadLetter):
        produce(producer, topics.dead_letter, encode(event), event.key,
                headers=kafka_headers(event))  # fmt: skip
        return
    reasons: list[str] = []
    if weights is None:
        if event.activity is not Activity.POST:
            return
        p, history = (0.0, 0.0), (0, 0.0)
    else:
        state = states.get(event.user_id)
        if state is None:
            state = states[event.user_id] = UserState.new(weights.version, weights.hidden_size)
        id_key, fingerprint = event_key(event.event_id), event_fingerprint(event)
        seen = state.seen(id_key, fingerprint)
        if seen is not Seen.NEW:  # a repeat; a conflicting one is dead-lettered, as the flow does
            accepted = Accepted(event, 0.0, partition, offset, topics.clicks, key)
            letter = user_events.repeat(accepted, state, seen, id_key, fingerprint)
            if letter is not None:
                produce(producer, topics.dead_letter, encode(letter), letter.key,
                        headers=kafka_headers(letter))  # fmt: skip
            return
        p, reasons = advance_with_reasons(weights, state, event, id_key, fingerprint)
        if p is None:
            return
        history = history_at(state.memory, event.ts)
    score = score_record(event, p, DEFAULT_THRESHOLDS, version, history, reasons)
    produce(producer, topics.risk_scores, encode(score), score.key, headers=kafka_headers(score))


def _throughput(cfg: LiveBenchConfig, variant: str, topics: Topics, model: ModelWeights) -> dict:
    sent = replay(cfg.events, cfg.kafka, topics.clicks, limit=cfg.limit, progress=False).sent
    weights = None if variant == "pass_through" else model
    with tempfile.TemporaryDirectory() as tmp:
        init_db_dir(Path(tmp), 1)
        recovery = None if variant == "model_no_recovery" else RecoveryConfig(Path(tmp))
        sample = UserSample(cfg.drift_sample if variant == "model_drift_sample" else 1.0)
        flow = build_flow(FlowConfig(cfg.kafka, topics, tail=False, drift_sample=sample),
                          weights, lambda: DEFAULT_THRESHOLDS)  # fmt: skip
        started, cpu = time.perf_counter(), time.process_time()
        run_main(flow, epoch_interval=timedelta(seconds=cfg.snapshot_s),
                 recovery_config=recovery)  # fmt: skip
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        states = read_states(Path(tmp)) if variant == "model" else {}
    sizes = [len(encode_state(s)) for s in states.values()]
    return {"events": sent, "seconds": round(seconds, 3), "events_per_s": round(sent / seconds, 1),
            "cpu_us_per_event": round(1e6 * cpu / sent, 2), **_scoring_span(cfg, topics, sent),
            "state_bytes": _summary(sizes) if sizes else None}  # fmt: skip


def _scoring_span(cfg: LiveBenchConfig, topics: Topics, sent: int) -> dict:
    """``scoring_span`` of the scores a run wrote, by their producer's timestamps."""
    return scoring_span([m.timestamp()[1] for m in read_to_end(cfg.kafka, topics.risk_scores)],
                        sent)  # fmt: skip


def scoring_span(stamps_ms: list[int], sent: int) -> dict:
    """The scores written (``len(stamps_ms)``), the span between the first and the last of
    them (s), and ``sent`` events over that span: the steady rate, without the start-up and
    shutdown that the wall time of a run includes (a flow's is about a second here, the plain
    loop's half of that). The few events before the first post and after the last are left
    out of the span but counted, the same in every variant.

    The steady rate is None when the span is shorter than ``MIN_STEADY_SPAN_S``: the stamps
    are whole milliseconds, and a run that writes its scores in one or two output batches
    (a short stream) has a span of a few of them or none, so its rate would be noise or
    infinite.

    >>> scoring_span([1_000, 1_500, 3_000], 4_000)
    {'scores': 3, 'scoring_seconds': 2.0, 'steady_events_per_s': 2000.0}
    >>> scoring_span([7, 7, 9], 1_500)["steady_events_per_s"] is None
    True
    """
    span_s = (max(stamps_ms) - min(stamps_ms)) / 1000.0 if stamps_ms else 0.0
    steady = round(sent / span_s, 1) if span_s >= MIN_STEADY_SPAN_S else None
    return {"scores": len(stamps_ms), "scoring_seconds": round(span_s, 3),
            "steady_events_per_s": steady}  # fmt: skip


def _latency(cfg: LiveBenchConfig, variant: str, log: Path, model: Path | None = None) -> dict:
    """Post-to-score latency of the flow with ``cfg.model`` (``variant`` "model"), with
    ``model`` (any other variant name) or without a model ("pass_through")."""
    with _fresh_topics(cfg) as topics:
        chosen = cfg.model if variant == "model" else model
        return _latency_on(cfg, chosen, log, topics)


def run_latency_pair(cfg: LiveBenchConfig, reference: Path, log: Path) -> dict:
    """Post-to-score latency of the flow with ``cfg.model`` and with the ``reference`` model,
    measured alternately ``cfg.repeats`` times each (the order swapping every repeat), on the
    same replay: per run p50/p99 (ms), their medians, and the median of the paired p99
    differences (model minus reference). Raises TimeoutError when a flow never gets ready."""
    runs: dict[str, list[dict]] = {"model": [], "reference": []}
    for r in range(cfg.repeats):
        for v in (("model", "reference") if r % 2 == 0 else ("reference", "model")):
            runs[v].append(_latency(cfg, v, log, reference))
            if cfg.progress:
                print(f"latency {v} #{r + 1}: p50 {runs[v][-1]['p50_ms']} ms, p99 "
                      f"{runs[v][-1]['p99_ms']} ms", flush=True)  # fmt: skip
    pairs = zip(runs["model"], runs["reference"], strict=True)
    return {"runs": runs,
            "median_p50_ms": {v: statistics.median(x["p50_ms"] for x in runs[v]) for v in runs},
            "median_p99_ms": {v: statistics.median(x["p99_ms"] for x in runs[v]) for v in runs},
            "p99_ms_model_minus_reference": round(statistics.median(
                a["p99_ms"] - b["p99_ms"] for a, b in pairs), 2),
            "models": {"model": str(cfg.model), "reference": str(reference)},
            "config": {k: str(v) if isinstance(v, Path | KafkaSettings) else v
                       for k, v in vars(cfg).items()}}  # fmt: skip


def _latency_on(cfg: LiveBenchConfig, model_dir: Path | None, log: Path, topics: Topics) -> dict:
    model = ["--model", str(model_dir)] if model_dir is not None else ["--pass-through"]
    port = free_port()
    proc = serve_process(cfg.kafka, topics, [*model, "--metrics-port", str(port),
                                             "--snapshot-seconds", str(cfg.snapshot_s)],
                         log)  # fmt: skip
    try:
        # Started, partitions assigned: what it scores from here on is latency, not start-up.
        wait_until(lambda: is_ready(f"http://{HOST}:{port}"), 120, 0.2, what="the flow ready")
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
            "p99_ms": round(1000 * float(np.percentile(lat, 99)), 2),
            # How busy the shared machine was: the 1-minute load average as the run ended.
            "load_1m": round(os.getloadavg()[0], 1)}  # fmt: skip


def _summary(values: list[int]) -> dict:
    return {"users": len(values), "median": int(statistics.median(values)),
            "p99": int(np.percentile(values, 99)), "max": max(values)}  # fmt: skip


def _median(values: Iterator[float | None]) -> float | None:
    got = list(values)
    return None if None in got else statistics.median(got)  # type: ignore[type-var]


def _paired(
    runs: dict[str, list[dict]], over: str, under: str, rate: str = "events_per_s"
) -> float | None:
    """The median over repeats of ``over``'s ``rate`` divided by ``under``'s in that repeat
    (None when a run has no steady rate: its scores span under ``MIN_STEADY_SPAN_S``)."""
    pairs = [(a[rate], b[rate]) for a, b in zip(runs[over], runs[under], strict=True)]
    if any(a is None or b is None for a, b in pairs):
        return None
    return round(statistics.median(a / b for a, b in pairs), 3)


def run_live_bench(cfg: LiveBenchConfig, log: Path) -> dict:
    """All measurements: in each repeat every variant once, in an order that rotates from
    repeat to repeat (so a slow spell of a shared machine hits them all)."""
    weights = load_scorer(cfg.model)
    warm_up(weights)  # the compiled step, before any timed run
    runs: dict[str, list[dict]] = {v: [] for v in VARIANTS}
    for r in range(cfg.repeats):
        for i in range(len(VARIANTS)):
            v = VARIANTS[(r + i) % len(VARIANTS)]
            runs[v].append(_throughput_once(cfg, v, weights))
            if cfg.progress:
                print(f"throughput {v} #{r + 1}: {runs[v][-1]['events_per_s']:,.0f} events/s",
                      flush=True)  # fmt: skip
    throughput = {v: {"median_events_per_s": statistics.median(x["events_per_s"]
                                                                for x in runs[v]),
                      "median_steady_events_per_s": _median(x["steady_events_per_s"]
                                                            for x in runs[v]),
                      "median_cpu_us_per_event": statistics.median(x[CPU] for x in runs[v]),
                      "runs": runs[v]} for v in VARIANTS}  # fmt: skip
    latency = {v: _latency(cfg, v, log) for v in ("model", "pass_through")}
    return {"throughput": throughput,
            "model_over_pass_through": _paired(runs, "model", "pass_through"),
            "model_over_plain_loop": _paired(runs, "model", "plain_loop"),
            "pass_through_over_plain_loop_no_model": _paired(runs, "pass_through",
                                                             "plain_loop_no_model"),
            "recovery_over_no_recovery": _paired(runs, "model", "model_no_recovery"),
            "gc_tuned_over_default": _paired(runs, "model", "model_default_gc"),
            "drift_sample_over_model": _paired(runs, "model_drift_sample", "model"),
            "drift_sample_over_plain_loop": _paired(runs, "model_drift_sample", "plain_loop"),
            # The same ratios of CPU time per event (this process's, every thread), the inverse
            # way round so they read alike: what a shared machine's spells change least.
            "cpu": {"model_over_pass_through": _paired(runs, "pass_through", "model", CPU),
                    "model_over_plain_loop": _paired(runs, "plain_loop", "model", CPU),
                    "pass_through_over_plain_loop_no_model": _paired(
                        runs, "plain_loop_no_model", "pass_through", CPU),
                    "drift_sample_over_plain_loop": _paired(runs, "plain_loop",
                                                            "model_drift_sample", CPU)},
            # The same ratios of the steady rates (``scoring_span``): start-up left out.
            "steady": {"model_over_pass_through": _paired(runs, "model", "pass_through", STEADY),
                       "model_over_plain_loop": _paired(runs, "model", "plain_loop", STEADY),
                       "pass_through_over_plain_loop_no_model": _paired(
                           runs, "pass_through", "plain_loop_no_model", STEADY),
                       "drift_sample_over_plain_loop": _paired(runs, "model_drift_sample",
                                                               "plain_loop", STEADY)},
            "latency": latency, "state_bytes_per_user": runs["model"][-1]["state_bytes"],
            "config": {k: str(v) if isinstance(v, Path | KafkaSettings) else v
                       for k, v in vars(cfg).items()}}  # fmt: skip
