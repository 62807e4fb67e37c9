"""The retraining controller: drift alerts in, a challenger trained, promoted only if it wins.

The decision core is pure (``RetrainController.on_alert``): alerts are debounced, since one
detector firing once is weak evidence (README, "Drift monitors": the performance monitor alone
is indistinguishable from noise), and retraining is followed by a cool-down so the new model
is not retrained before it has served.

- An alert triggers a retraining when ``alerts_needed`` distinct alerts (by ``alert_id``: the
  topic is at-least-once) arrived within ``within_hours``, or at once when its monitor is one of
  ``immediate_monitors``.
- Alerts older than ``within_hours`` on arrival (a backlog) count for nothing; alerts during
  the cool-down (``cooldown_hours`` after a trigger, and after the retraining ended) are dropped.
- All times are wall clock (Unix seconds): the alert's ``detected_at``, and ``now``.

>>> from deepcredit.records import DriftAlert, ModelEvent, Monitor
>>> def alert(i, t, monitor=Monitor.SCORES):
...     return DriftAlert(alert_id=f"a{i}", monitor=monitor, detector="ADWIN", signal="p_default",
...                       model_version="m", event_ts=1.6e9, events_seen=i, detected_at=t)
>>> c = RetrainController(ControllerConfig(alerts_needed=2, within_hours=1, cooldown_hours=10))
>>> c.on_alert(alert(1, 0.0), now=0.0) is None
True
>>> c.on_alert(alert(1, 0.0), now=60.0) is None  # the same alert again: counts once
True
>>> c.on_alert(alert(2, 120.0), now=120.0).alert_ids
('a1', 'a2')
>>> c.on_alert(alert(3, 200.0), now=200.0), c.on_alert(alert(4, 300.0), now=300.0)  # cool-down
(None, None)

``RetrainController.retrain`` then runs one decision:

1. assemble the training set: an event-time window (``window_days``) ending at the newest
   archived event, from the click archive (``training.archive``), or an event file as given;
2. train a challenger with ``training.pipeline.train_model`` into the registry's folder, its
   parent the champion (the current model);
3. evaluate champion and challenger on the same posts: the labelled posts of the last
   ``eval_days`` of the window, of the test-split users only;
4. promote the challenger when its AUC beats the champion's by ``min_auc_gain`` on every target
   measurable in that window (both, when both are), else record a "reject";
5. log the decision with its numbers: the registry's promotions.jsonl, and a ``ModelEvent`` on
   the model-events topic when Kafka settings are given.

No leakage in 3.: test users are chosen by a salted hash of the user id (``training.train.
split``), the same for any log, so the challenger never fit them nor early-stopped on them, and
neither did the champion if it was trained with the same ``test_fraction`` (checked and recorded
as ``champion_split_matches``). Labels are those known at the window's end; inputs only see the
past. Why every target and not the mean: a gain on delinquency must not buy a loss on default,
the costlier error. A target with one class only among those posts cannot be judged and is left
out; when none can be judged the challenger is rejected.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from deepcredit.records import DriftAlert, ModelEvent, Monitor
from deepcredit.settings import KafkaSettings, Topics
from scorer.registry import PROMOTE, ModelRegistry, Promotion

if TYPE_CHECKING:
    import numpy as np

    from training.dataset import Sequences
    from training.train import TrainConfig

__all__ = [
    "REJECT",
    "ControllerConfig",
    "Decision",
    "RetrainController",
    "RetrainResult",
    "labels_within",
    "run_controller",
]

log = logging.getLogger(__name__)

REJECT = "reject"
DAY_S = 86_400.0
HOUR_S = 3_600.0


@dataclass(frozen=True)
class ControllerConfig:
    # debounce and cool-down
    alerts_needed: int = 3
    within_hours: float = 24.0
    immediate_monitors: frozenset[Monitor] = frozenset()
    cooldown_hours: float = 7 * 24.0
    # data
    window_days: float = 365.0  # event time the challenger is trained on
    eval_days: float = 90.0  # most recent event time both models are judged on
    # the gate
    min_auc_gain: float = 0.005
    # the challenger (training.model.ModelConfig / training.train.TrainConfig)
    hidden_size: int = 32
    epochs: int = 20
    batch_users: int = 32
    lr: float = 1e-3
    seed: int = 0
    max_minutes: float | None = None
    by: str = "retrain-controller"  # who the registry logs as deciding

    def train_config(self) -> TrainConfig:
        """How the challenger is trained (the champion should be trained alike to compare)."""
        from training.train import TrainConfig

        return TrainConfig(epochs=self.epochs, batch_users=self.batch_users, lr=self.lr,
                           seed=self.seed, max_minutes=self.max_minutes)  # fmt: skip


@dataclass(frozen=True)
class Decision:
    """Retrain now: when, why, and the alerts that led to it."""

    at: float
    reason: str
    alert_ids: tuple[str, ...]


@dataclass
class RetrainResult:
    action: str
    challenger: str
    champion: str | None
    reason: str
    metrics: dict[str, Any]
    decision: Promotion
    events: Path


class RetrainController:
    """Debounces drift alerts into retraining decisions, and runs one (``retrain``)."""

    def __init__(self, config: ControllerConfig | None = None) -> None:
        self.config = config or ControllerConfig()
        self._recent: deque[tuple[float, str]] = deque()  # (detected_at, alert_id): counting
        self._seen: dict[str, float] = {}  # alert_id -> detected_at, within the window
        self._cooldown_until = -float("inf")

    # -- the pure core ---------------------------------------------------------------------------

    def on_alert(self, alert: DriftAlert, now: float) -> Decision | None:
        c = self.config
        horizon = now - c.within_hours * HOUR_S
        while self._recent and self._recent[0][0] < horizon:
            self._recent.popleft()
        self._seen = {a: t for a, t in self._seen.items() if t >= horizon}
        if alert.detected_at < horizon or alert.alert_id in self._seen:
            return None  # stale, or redelivered (it counted, or was dropped, once already)
        self._seen[alert.alert_id] = alert.detected_at
        if now < self._cooldown_until:
            return None
        self._recent.append((alert.detected_at, alert.alert_id))
        if alert.monitor in c.immediate_monitors:
            reason = f"{alert.monitor.value} alert on {alert.signal}"
        elif len(self._recent) >= c.alerts_needed:
            reason = f"{len(self._recent)} drift alerts within {c.within_hours:g} h"
        else:
            return None
        ids = tuple(alert_id for _, alert_id in self._recent)
        self._recent.clear()
        self._cooldown_until = now + c.cooldown_hours * HOUR_S
        return Decision(at=now, reason=reason, alert_ids=ids)

    def retrained(self, at: float) -> None:
        """A retraining ended at ``at``: the cool-down runs from there."""
        self._cooldown_until = max(self._cooldown_until, at + self.config.cooldown_hours * HOUR_S)

    def resume(self, history: Iterable[Promotion]) -> None:
        """After a restart: the cool-down of the last decision this controller logged."""
        ours = [d.at for d in history if d.by == self.config.by]
        if ours:
            self.retrained(max(ours))

    # -- one retraining --------------------------------------------------------------------------

    def retrain(
        self,
        source: Path,
        registry: ModelRegistry,
        *,
        decision: Decision | None = None,
        kafka: KafkaSettings | None = None,
        topics: Topics | None = None,
        progress: bool = False,
    ) -> RetrainResult:
        from training.artifact import load_model
        from training.eventlog import load_sequences
        from training.model import ModelConfig
        from training.pipeline import train_model
        from training.train import split

        c = self.config
        events, data_window = self._assemble(Path(source))  # 1.
        champion = registry.current()
        train_config = c.train_config()
        card = train_model(
            events,
            registry.root,
            ModelConfig(hidden_size=c.hidden_size),
            train_config,
            parent_version=champion and champion.version,
            progress=progress,
        )  # 2. fmt: skip

        seq, _ = load_sequences(events, progress=progress)  # 3.
        test_users = split(seq, train_config).test
        eval_end = float(seq.event_ts.max()) if len(seq.event_ts) else 0.0
        eval_start = eval_end - c.eval_days * DAY_S
        recent = dataclasses.replace(seq, labels=labels_within(seq, eval_start))
        challenger_m = _aucs(load_model(registry.root / card.version)[0], recent, test_users)
        champion_m: dict[str, float] = {}
        split_matches = None
        if champion is not None:
            model, champion_card = load_model(registry.root / champion.version)
            champion_m = _aucs(model, recent, test_users)
            fraction = champion_card.train_config.get("test_fraction")
            split_matches = fraction == train_config.test_fraction

        action, reason, gains = _gate(
            champion_m if champion else None, challenger_m, c.min_auc_gain
        )  # 4. fmt: skip
        if decision is not None:
            reason = f"{reason} (after {decision.reason})"
        metrics = {
            "auc": {"challenger": challenger_m, "champion": champion_m if champion else None},
            "gain": gains,
            "min_auc_gain": c.min_auc_gain,
            "eval": {"from_ts": eval_start, "to_ts": eval_end, "users": len(test_users),
                     "posts": int(_labelled(recent, test_users))},
            "champion_split_matches": split_matches,
            "data": {"path": str(events), "sha256": card.data.sha256, "users": card.data.users,
                     **data_window},
            "alerts": list(decision.alert_ids) if decision else [],
        }  # fmt: skip
        if action == PROMOTE:  # 5.
            logged = registry.promote(card.version, by=c.by, reason=reason, metrics=metrics)
        else:
            logged = registry.record(REJECT, card.version, by=c.by, reason=reason,
                                     metrics=metrics)  # fmt: skip
        if kafka is not None:
            _publish(kafka, (topics or Topics.from_env()).model_events, logged)
        self.retrained(time.time())
        log.info("%s %s: %s", action, card.version, reason)
        return RetrainResult(action, card.version, champion and champion.version, reason,
                             metrics, logged, events)  # fmt: skip

    def _assemble(self, source: Path) -> tuple[Path, dict[str, Any]]:
        from training.archive import MANIFEST_FILE, event_time_range, write_window

        if source.is_file():
            return source, {}
        if not (source / MANIFEST_FILE).is_file():
            raise FileNotFoundError(f"{source} is neither an events file nor a click archive")
        span = event_time_range(source)
        if span is None:
            raise ValueError(f"the click archive {source} holds no events yet")
        end = span[1] + 1.0  # the window is half-open: keep the newest event
        start = max(span[0], end - self.config.window_days * DAY_S)
        info = write_window(source, start_ts=start, end_ts=end)
        return info.path, {"from_ts": start, "to_ts": end, "lines": info.lines}


def labels_within(seq: Sequences, start_ts: float, end_ts: float = math.inf) -> np.ndarray:
    """The labels (Nl, 2) of the loan steps with start_ts <= event time < end_ts, NaN elsewhere:
    what judging a model on the posts of a period needs."""
    import numpy as np

    labels = seq.labels.copy()
    labels[(seq.event_ts < start_ts) | (seq.event_ts >= end_ts)] = np.nan
    return labels


def _labelled(seq, users) -> int:
    import numpy as np

    rows = [np.arange(seq.loan_offsets[u], seq.loan_offsets[u + 1]) for u in users]
    if not rows:
        return 0
    return int(np.isfinite(seq.labels[np.concatenate(rows)]).any(axis=1).sum())


def _aucs(model, seq, users) -> dict[str, float]:
    from training.evaluation import per_target
    from training.train import predict

    y, p = predict(model, seq, users)
    return {t: round(m.auc, 6) for t, m in per_target(y, p).items()}


def _gate(
    champion: dict[str, float] | None, challenger: dict[str, float], margin: float
) -> tuple[str, str, dict[str, float]]:
    """(action, reason, AUC gain per target judged).

    >>> champion = {"delinquent": 0.70, "default": 0.80}
    >>> _gate(champion, {"delinquent": 0.72, "default": 0.81}, 0.005)
    ('promote', 'beats the champion by >= 0.005 AUC on delinquent, default', \
{'delinquent': 0.02, 'default': 0.01})
    >>> _gate(champion, {"delinquent": 0.75, "default": 0.801}, 0.005)[:2]
    ('reject', 'AUC gain below 0.005 on default')
    """
    if champion is None:
        if not challenger:
            return REJECT, "no target measurable in the evaluation window", {}
        return PROMOTE, "no champion: the first model", {}
    targets = [t for t in challenger if t in champion]
    gains = {t: round(challenger[t] - champion[t], 6) for t in targets}
    if not gains:
        return REJECT, "no target measurable for both models in the evaluation window", gains
    short = [t for t in targets if gains[t] < margin]
    if short:
        return REJECT, f"AUC gain below {margin:g} on {', '.join(short)}", gains
    return PROMOTE, f"beats the champion by >= {margin:g} AUC on {', '.join(targets)}", gains


def _publish(kafka: KafkaSettings, topic: str, decision: Promotion) -> None:
    from confluent_kafka import Producer

    from deepcredit.codec import encode
    from deepcredit.kafka_io import produce

    event = ModelEvent(action=decision.action, version=decision.version,
                       previous=decision.previous, by=decision.by, reason=decision.reason,
                       at=decision.at, metrics=decision.metrics or {})  # fmt: skip
    producer = Producer(kafka.client_config())
    produce(producer, topic, encode(event), decision.version.encode())
    if producer.flush(30) != 0:
        log.warning("the model event of %s was not confirmed by Kafka", decision.version)


# -- the loop ---------------------------------------------------------------------------------


def run_controller(
    controller: RetrainController,
    source: Path,
    registry: ModelRegistry,
    kafka: KafkaSettings,
    topics: Topics,
    *,
    until_end: bool,
    group_id: str = "deepcredit-retrain-controller",
    progress: bool = False,
) -> list[RetrainResult]:
    """Consume the drift-alerts topic and retrain on what the core decides.

    The consumer group's committed offset is where it resumes; an alert's offset is committed
    once it is handled (a retraining included). A crash in a retraining redelivers the alert;
    ``resume`` restores the cool-down from the registry's log, so it does not retrain twice in
    a row. With ``until_end``, stop at the topic's end as of the start (for tests and replays).
    """
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    controller.resume(registry.history())
    topic = topics.drift_alerts
    consumer = Consumer(kafka.client_config(**{"group.id": group_id, "enable.auto.commit": False,
                                             "enable.partition.eof": True}))  # fmt: skip
    results: list[RetrainResult] = []
    try:
        meta = consumer.list_topics(topic, timeout=30).topics[topic]
        if meta.error is not None:
            raise ValueError(f"topic {topic!r}: {meta.error.str()}")
        tps = [TopicPartition(topic, p) for p in sorted(meta.partitions)]
        committed = {tp.partition: tp.offset for tp in _committed(consumer, tps)}
        start = {p: (o if o >= 0 else OFFSET_BEGINNING) for p, o in committed.items()}
        ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=30)[1] for tp in tps}
        pending = {p for p in ends if not until_end or max(committed[p], 0) < ends[p]}
        consumer.assign([TopicPartition(topic, p, start[p]) for p in sorted(start)])
        while pending:
            m = consumer.poll(0.5)
            if m is None:
                continue
            if m.error() is not None:
                if m.error().code() == KafkaError._PARTITION_EOF:
                    if until_end:
                        pending.discard(m.partition())
                    continue
                raise RuntimeError(f"reading {topic!r}: {m.error().str()}")
            try:
                alert = msgspec.json.decode(m.value(), type=DriftAlert)
            except msgspec.DecodeError as exc:
                log.warning("skipping offset %d of %s: not a drift alert (%s)", m.offset(),
                            topic, exc)  # fmt: skip
                alert = None
            if alert is not None:
                decision = controller.on_alert(alert, time.time())
                if decision is not None:
                    log.info("retraining: %s", decision.reason)
                    results.append(controller.retrain(source, registry, decision=decision,
                                                      kafka=kafka, topics=topics,
                                                      progress=progress))  # fmt: skip
            consumer.commit(offsets=[TopicPartition(topic, m.partition(), m.offset() + 1)],
                            asynchronous=False)  # fmt: skip
            if until_end and m.offset() >= ends[m.partition()] - 1:
                pending.discard(m.partition())
    except KeyboardInterrupt:
        log.info("interrupted")
    finally:
        consumer.close()
    return results


def _committed(consumer, tps, timeout_s: float = 30.0):  # -> list[TopicPartition]
    """The group's committed offsets, retried while the group coordinator is not yet ready (a
    fresh broker creates its offsets topic on the first group's request)."""
    from confluent_kafka import KafkaError, KafkaException

    not_ready = {KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_NOT_AVAILABLE,
                 KafkaError.COORDINATOR_LOAD_IN_PROGRESS}  # fmt: skip
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return consumer.committed(tps, timeout=timeout_s)
        except KafkaException as exc:
            error = exc.args[0]
            if not (error.retriable() or error.code() in not_ready) or time.monotonic() > deadline:
                raise
            log.info("committed offsets not ready (%s): retrying", error.str())
            time.sleep(0.5)
