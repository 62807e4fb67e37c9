"""The live scoring dataflow, Kafka to Kafka.

    clicks ─ decode ─┬─ dead letters ─────────────────────────────> dead-letter topic
                     └─ key by user ─ score (per-user state) ─ decide (live thresholds)
                                                               └──> risk-scores topic

Run it with ``deepcredit serve`` or, the same flow, ``python -m bytewax.run
"dataflow.flow:from_env()"`` (configured by DEEPCREDIT_* environment variables).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import bytewax.operators as op
from bytewax.connectors.kafka import KafkaSink, KafkaSource
from bytewax.dataflow import Dataflow

from dataflow.records import Accepted
from dataflow.steps import PassThrough, UserScorer, dead_letter_message, decide, decode
from deepcredit.records import ThresholdUpdate
from deepcredit.settings import KafkaSettings, Topics
from scorer.artifact import load_scorer
from scorer.model import ModelWeights

__all__ = ["FlowConfig", "build_flow", "from_env"]


@dataclass(frozen=True)
class FlowConfig:
    """Where the flow reads and writes, and how it consumes."""

    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    topics: Topics = field(default_factory=Topics)
    tail: bool = True  # False: stop at the end of the clicks topic (tests, benchmarks, replays)
    batch_size: int = 1000  # most messages per poll of each clicks partition


def build_flow(
    cfg: FlowConfig,
    weights: ModelWeights | None,
    thresholds: Callable[[], ThresholdUpdate],
    *,
    name: str = "deepcredit",
) -> Dataflow:
    """The dataflow; ``weights=None`` replaces the model step with a pass-through that scores
    every post 0 (the benchmark's baseline: everything but the model)."""
    brokers = [cfg.kafka.bootstrap_servers]
    config = {k: str(v) for k, v in cfg.kafka.extra_config.items()}
    flow = Dataflow(name)
    messages = op.input("clicks", flow, KafkaSource(brokers, [cfg.topics.clicks], tail=cfg.tail,
                                                    add_config=config,
                                                    batch_size=cfg.batch_size))  # fmt: skip
    decoded = op.map("decode", messages, decode)
    valid = op.branch("valid", decoded, lambda x: isinstance(x, Accepted))
    letters = op.map("dead_letter", valid.falses, dead_letter_message)
    op.output("dead_letters", letters, KafkaSink(brokers, cfg.topics.dead_letter, config))
    by_user = op.key_on("by_user", valid.trues, lambda a: a.event.user_id)
    if weights is None:
        scored = op.stateful_batch("score", by_user, PassThrough)
        version = "pass-through"
    else:
        scored = op.stateful_batch("score", by_user, partial(UserScorer, weights))
        version = weights.version
    decided = op.map("decide", op.key_rm("unkey", scored),
                     lambda s: decide(s, thresholds, version)[1])  # fmt: skip
    op.output("scores", decided, KafkaSink(brokers, cfg.topics.risk_scores, config))
    return flow


def from_env() -> Dataflow:
    """The flow configured from the environment, for ``python -m bytewax.run``:
    DEEPCREDIT_MODEL (model folder, required), DEEPCREDIT_BOOTSTRAP, DEEPCREDIT_TOPIC_PREFIX,
    DEEPCREDIT_METRICS_PORT (default 9464; 0 = off)."""
    from dataflow.serve import start_runtime

    model = os.environ.get("DEEPCREDIT_MODEL")
    if not model:
        raise SystemExit("set DEEPCREDIT_MODEL to a model folder made by 'deepcredit train'")
    weights = load_scorer(Path(model))
    cfg = FlowConfig(KafkaSettings.from_env(), Topics.from_env())
    live = start_runtime(cfg, weights, int(os.environ.get("DEEPCREDIT_METRICS_PORT", "9464")))
    return build_flow(cfg, weights, live.current)
