"""The live scoring dataflow, Kafka to Kafka.

    clicks ─ decode ─┬─ dead letters ────────────────────────────> dead-letter topic
                     └─ key by user ─ score (per-user state) ─┬─ posts ─ decide (live thresholds)
                                                              │          └──> risk-scores topic
                                                              └─ every event ─ drift (one global
                                                                 DriftMonitors) ──> drift-alerts

Score, decide and drift send a message they failed on to the dead-letter topic too, and go on
(the poison-pill rule, ``dataflow.steps``); so does the score step with a conflicting duplicate
(an event id reused for other content, ``dataflow.user_events``). A loan post dead-lettered by
decode, score or decide also gets a ``not_scored`` record on the risk-scores topic, keyed by
its user like a score (``dataflow.steps.not_scored_message``): every post gets an answer there.

Run it with ``deepcredit serve`` or, the same flow, ``python -m bytewax.run
"dataflow.serve:from_env()"`` (configured by DEEPCREDIT_* environment variables).

With a cut-over seed (``state/seed.py``) the flow starts each clicks partition at the seed's
offset (the history before it is in the seeded states) and each user at the seeded state;
recovery snapshots, once there are some, win over both.

Step ids: an input or output is named after its topic, a map after its function, a stateful
step after what it keeps (``score``, ``drift``), a key step after its stateful step
(``drift_key``, ``score_unkey``). The stateful ids are part of the recovery store's keys
(``state.recovery_store``): renaming one orphans its snapshots.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from functools import partial
from pathlib import Path

import bytewax.operators as op
from bytewax.connectors.kafka import KafkaSource
from bytewax.dataflow import Dataflow
from bytewax.inputs import StatefulSourcePartition
from confluent_kafka.admin import AdminClient

from dataflow import metrics
from dataflow.config import FlowConfig
from dataflow.records import Accepted, Scored
from dataflow.sink import CheckedKafkaSink
from dataflow.steps import (
    DriftStep,
    Message,
    PassThrough,
    UserScorer,
    dead_letter_message,
    decide_batch,
    decode_batch,
    drift_alert_message,
    not_scored_message,
    user_of,
)
from deepcredit.records import DeadLetter, ThresholdUpdate
from scorer.model import ModelWeights
from state.recovery_store import CLICKS_STEP_ID, FLOW_ID, SCORE_STEP_ID
from state.seed import Seed, SeedError, read_seed

__all__ = ["FlowConfig", "build_flow", "load_seed"]

log = logging.getLogger(__name__)

#: How long listing the clicks partitions waits for the broker at start.
_LIST_TIMEOUT_S = 30.0


class _SeededKafkaSource(KafkaSource):
    """The clicks source, each partition the seed covers starting at the seed's offset unless
    recovery has its own (a snapshot is always at or past the seed).

    An offset the topic does not hold (recreated, or past retention) stops the flow with an
    error (``auto.offset.reset``) instead of librdkafka's silent jump to the end; the start-up
    check (``dataflow.serve``) catches the stored ones before that.
    """

    def __init__(self, cfg: FlowConfig, start: Mapping[int, int]) -> None:
        consumer = {**{k: str(v) for k, v in cfg.kafka.extra_config.items()},
                    "auto.offset.reset": "error"}  # fmt: skip
        super().__init__([cfg.kafka.bootstrap_servers], [cfg.topics.clicks], tail=cfg.tail,
                         add_config=consumer, batch_size=cfg.batch_size)  # fmt: skip
        self._kafka = cfg.kafka
        self._topic = cfg.topics.clicks
        self._start = start
        metrics.CLICKS_NEXT_OFFSET.clear()  # an earlier flow of this process read other clicks

    def list_parts(self) -> list[str]:
        """Bytewax's "<partition>-<topic>" names; its own listing would hand the consumer
        settings to an admin client (a librdkafka warning) and wait for a broker forever."""
        admin = AdminClient(self._kafka.client_config())
        meta = admin.list_topics(self._topic, timeout=_LIST_TIMEOUT_S).topics[self._topic]
        if meta.error is not None:
            raise RuntimeError(f"listing the partitions of {self._topic!r}: {meta.error.str()}")
        return [f"{p}-{self._topic}" for p in sorted(meta.partitions)]

    def build_part(
        self, step_id: str, for_part: str, resume_state: int | None
    ) -> StatefulSourcePartition:
        partition = int(for_part.split("-", 1)[0])  # Bytewax names it "<index>-<topic>"
        if resume_state is None and partition in self._start:
            resume_state = self._start[partition]
            log.info("clicks partition %d starts at the seed's offset %d", partition,
                     resume_state)  # fmt: skip
        return _TrackedPartition(super().build_part(step_id, for_part, resume_state), partition)


class _TrackedPartition(StatefulSourcePartition[Message, int | None]):
    """A clicks partition that keeps the metrics of its position: counted in
    ``deepcredit_clicks_partitions`` while open, its next offset after each batch (one gauge
    write per batch, not per message)."""

    def __init__(self, inner: StatefulSourcePartition[Message, int | None], partition: int):
        self._inner = inner
        self._next_offset = metrics.CLICKS_NEXT_OFFSET.labels(str(partition))
        self._track()
        metrics.CLICKS_PARTITIONS.inc()

    def next_batch(self) -> Iterable[Message]:
        batch = self._inner.next_batch()
        self._track()
        return batch

    def next_awake(self) -> datetime | None:
        return self._inner.next_awake()

    def snapshot(self) -> int | None:
        return self._inner.snapshot()

    def close(self) -> None:
        metrics.CLICKS_PARTITIONS.dec()
        self._inner.close()

    def _track(self) -> None:
        offset = self._inner.snapshot()
        if offset is not None and offset >= 0:  # not a logical offset (the beginning)
            self._next_offset.set(offset)


def load_seed(folder: Path, weights: ModelWeights | None, topic: str) -> Seed:
    """The seed in ``folder``, checked against the model and clicks topic of this flow."""
    if weights is None:
        raise SeedError("a seed holds model states: it needs a model (not --pass-through)")
    seed = read_seed(folder)
    problem = seed.problem(weights.version, topic)
    if problem is not None:
        raise SeedError(f"{folder}: {problem}")
    log.info("seeded from %s: %d users of model %s, clicks offsets %s", folder,
             len(seed.states), seed.model_version, seed.offsets)  # fmt: skip
    return seed


def build_flow(
    cfg: FlowConfig,
    weights: ModelWeights | None,
    thresholds: Callable[[], ThresholdUpdate],
    *,
    seed: Seed | None = None,
    name: str = FLOW_ID,
) -> Dataflow:
    """The dataflow; ``weights=None`` replaces the model step with a pass-through that scores
    every post 0 (the benchmark's baseline: everything but the model). ``seed`` (made for
    ``weights``, see ``load_seed``): where each clicks partition and each new user start; the
    flow takes each user's state out of ``seed.states`` as it loads it (``UserScorer``), so a
    seed serves one flow.

    Drift (``cfg.monitors``): the score step also emits every non-post event of the users the
    drift sample watches (``cfg.drift_sample``, all by default), so one stream carries each
    such user's events in order, posts with their probabilities. It is keyed on one
    constant key into a single ``DriftMonitors``, on one worker, on purpose: the monitors are
    statistics of the whole platform (every partition's users in one mix, one score
    distribution, one rolling AUC), and an update costs microseconds, far below the model step;
    the price is that this step's items cross to that worker in a multi-worker flow (a sample
    fraction below 1 sends only its users' events). Across
    users the stream is only approximately in event time (partitions and batches interleave),
    which these statistics tolerate; near a due date, a loan's label can be settled by another
    user's later event that came first. The pass-through flow runs the same monitors (on its
    zero scores), so the benchmark's difference stays the model step alone.
    """
    flow = Dataflow(name)
    source = _SeededKafkaSource(cfg, seed.offsets if seed else {})
    messages = op.input(CLICKS_STEP_ID, flow, source)
    decoded = op.flat_map_batch("decode", messages, decode_batch)
    valid = op.branch("valid", decoded, lambda x: isinstance(x, Accepted))
    failed = [valid.falses]  # DeadLetter streams, one per step that makes them
    by_user = op.key_on("by_user", valid.trues, user_of)  # (user_id, Accepted)
    drift = cfg.monitors is not None
    sample = cfg.drift_sample
    if weights is None:
        logic = partial(PassThrough, emit_events=drift, sample=sample)
        version = "pass-through"
    else:
        logic = partial(UserScorer, weights, emit_events=drift, sample=sample,
                        seed=seed.states if seed else None)  # fmt: skip
        version = weights.version
    user_scored = op.stateful_batch(SCORE_STEP_ID, by_user, logic)
    score_out = op.key_rm("score_unkey", user_scored)  # Scored | Accepted | DeadLetter
    score_failed = op.branch("score_failed", score_out, _is_dead_letter)
    failed.append(score_failed.trues)  # failures and conflicting duplicates
    scored = score_failed.falses  # Scored | Accepted
    posts = op.filter("posts", scored, lambda x: isinstance(x, Scored)) if drift else scored
    decided = op.flat_map_batch("decide", posts, lambda b: decide_batch(b, thresholds, version))
    decide_failed = op.branch("decide_failed", decided, _is_dead_letter)
    failed.append(decide_failed.trues)
    scores = decide_failed.falses  # Kafka message of a Score
    # Every post gets an answer on the risk topic: a score, or a not_scored record when a step
    # up to decide dead-lettered it (the drift step's failures come after its score).
    unscored = op.merge("unscored_merge", *failed)  # DeadLetter
    not_scored = op.filter_map("not_scored", unscored,
                               lambda d: not_scored_message(d, version))  # fmt: skip
    risk = op.merge("risk_merge", scores, not_scored)
    op.output("scores", risk, CheckedKafkaSink(cfg.kafka, cfg.topics.risk_scores))
    if cfg.monitors is not None:
        # ("all", Scored | Accepted) of the users the sample watches
        watched = op.filter_map("drift_key", scored, _watched)
        drift_out = op.stateful_batch("drift", watched,
                                      partial(DriftStep, version, cfg.monitors,
                                              reorder=cfg.drift_reorder,
                                              sample=sample))  # fmt: skip
        unkeyed = op.key_rm("drift_unkey", drift_out)  # DriftAlert | DeadLetter
        drift_failed = op.branch("drift_failed", unkeyed, _is_dead_letter)
        failed.append(drift_failed.trues)
        sent = op.map("drift_alert_message", drift_failed.falses, drift_alert_message)
        op.output("drift_alerts", sent, CheckedKafkaSink(cfg.kafka, cfg.topics.drift_alerts))
    letters = op.merge("dead_letters_merge", *failed)  # DeadLetter
    messages_out = op.map("dead_letter_message", letters, dead_letter_message)
    op.output("dead_letters", messages_out, CheckedKafkaSink(cfg.kafka, cfg.topics.dead_letter))
    return flow


def _watched(item: Scored | Accepted) -> tuple[str, Scored | Accepted] | None:
    """The drift step's item, keyed on its one key, or None for a post of a user outside the
    drift sample (the score step passes on no other event of such a user)."""
    return None if isinstance(item, Scored) and not item.watched else ("all", item)


def _is_dead_letter(item: object) -> bool:
    return isinstance(item, DeadLetter)
