"""The flow's steps as plain functions and stateful logics, so they test without Kafka.

decode: Kafka message -> Accepted or DeadLetter.   score: per user, UserScorer advances the
state by each event (``scorer.model.advance``) and emits a Scored for each post (and, for the
drift monitors, the Accepted of every other event); a resent event (``scorer.model.is_repeat``)
is counted (``deepcredit_duplicate_events_total``) and emits nothing.   decide: Scored + live
thresholds -> Score record.   drift: all events but resends, in each user's order, through one
global ``DriftMonitors``.
"""

from __future__ import annotations

import logging
import pickle
import time
from collections.abc import Callable, Iterable, Mapping

from bytewax.connectors.kafka import KafkaSinkMessage, KafkaSourceMessage
from bytewax.operators import StatefulBatchLogic

from dataflow import metrics
from dataflow.records import Accepted, Scored
from dataflow.reorder import DRIFT_REORDER, Reorder
from deepcredit.codec import decode_click, encode
from deepcredit.events import ClickEvent
from deepcredit.records import DeadLetter, DriftAlert, ThresholdUpdate, score_record
from scorer.model import ModelWeights, StateVersionError, advance_unseen
from scorer.monitors import DriftMonitors, MonitorConfig
from scorer.user_state import UserState, decode_state, encode_state, event_key

__all__ = [
    "DriftStep",
    "Message",
    "PassThrough",
    "UserScorer",
    "dead_letter_message",
    "decide",
    "decode",
    "drift_alert_message",
]

Message = KafkaSourceMessage[bytes | None, bytes | None]
Out = KafkaSinkMessage[bytes, bytes]
log = logging.getLogger(__name__)


def decode(msg: Message) -> Accepted | DeadLetter:
    """A message from the clicks topic as an accepted event or a dead letter (never raises)."""
    result = decode_click(msg.value, key=msg.key, topic=msg.topic, partition=msg.partition,
                          offset=msg.offset)  # fmt: skip
    if isinstance(result, DeadLetter):
        metrics.DEAD_LETTERS.labels(result.reason.value).inc()
        return result
    metrics.EVENTS.labels(result.activity.value).inc()
    _, ms = msg.timestamp if msg.timestamp is not None else (0, 0)
    arrived = ms / 1000.0 if ms and ms > 0 else time.time()
    return Accepted(result, arrived, msg.partition or 0, msg.offset or 0)


def dead_letter_message(letter: DeadLetter) -> Out:
    """Keyed like the message it replaces, so a replay lands on the same partition."""
    return KafkaSinkMessage(letter.key, encode(letter))


class UserScorer(StatefulBatchLogic[Accepted, Scored | Accepted, bytes]):
    """One user's TLSTM state in the flow. Snapshots are the msgpack bytes of ``UserState``
    (immutable; sizes per hidden size in ``results/step.json``), so recovery stores exactly what
    the scorer holds.

    ``seed``: encoded states by user id (a cut-over's, ``state/seed.py``) for the users the
    recovery store has no snapshot of; others start from ``UserState.new``.

    With ``emit_events`` every event that is not a scored post comes out too, as its Accepted,
    so the drift monitors downstream see each user's events in order, posts included.

    A resend (an event id among the user's last ``RECENT_IDS``, ``scorer.model.is_repeat``)
    changes nothing and emits nothing, not even to the drift monitors: a post is scored once
    however often it is delivered, as training counts it once. Counted in
    ``deepcredit_duplicate_events_total{activity}``."""

    def __init__(
        self,
        weights: ModelWeights,
        snapshot: bytes | None,
        *,
        emit_events: bool = False,
        seed: Mapping[str, bytes] | None = None,
    ) -> None:
        self.weights = weights
        self.emit_events = emit_events
        self.seed = seed or {}
        # Bytewax builds the logic without its key, so a user never snapshotted gets its state
        # (the cut-over seed's, or a new one) from the user id of its first event.
        self.state: UserState | None = None
        if snapshot is not None:
            self.state = decode_state(snapshot)
            if self.state.model_version != weights.version:
                raise StateVersionError(
                    f"the recovery store holds states of model {self.state.model_version}, "
                    f"this flow serves {weights.version}: rebuild the states for the new model "
                    "(or start with an empty recovery directory)"
                )
        metrics.USERS.inc()

    def on_batch(self, values: list[Accepted]) -> tuple[Iterable[Scored | Accepted], bool]:
        if self.state is None:
            self.state = self._initial(values[0].event.user_id)
        state = self.state
        out: list[Scored | Accepted] = []
        for a in values:
            key = event_key(a.event.event_id)
            if state.has_seen(key):  # a resend (``scorer.model.is_repeat``)
                metrics.DUPLICATES.labels(a.event.activity.value).inc()
                continue
            started = time.perf_counter()
            p = advance_unseen(self.weights, state, a.event, key)
            metrics.PROCESSING.observe(time.perf_counter() - started)
            if p is not None:
                out.append(Scored(a, p[0], p[1]))
            elif self.emit_events:
                out.append(a)
        return out, StatefulBatchLogic.RETAIN

    def _initial(self, user_id: str) -> UserState:
        seeded = self.seed.get(user_id)
        if seeded is None:
            return UserState.new(self.weights.version, self.weights.hidden_size)
        return decode_state(seeded)

    def snapshot(self) -> bytes:
        assert self.state is not None, "Bytewax snapshots a key only after its first batch"
        return encode_state(self.state)


class PassThrough(StatefulBatchLogic[Accepted, Scored | Accepted, bytes]):
    """The score step without the model: every post scores 0 (the benchmark's baseline).
    ``emit_events`` as in ``UserScorer``."""

    def __init__(self, snapshot: bytes | None = None, *, emit_events: bool = False) -> None:
        self.emit_events = emit_events
        metrics.USERS.inc()

    def on_batch(self, values: list[Accepted]) -> tuple[Iterable[Scored | Accepted], bool]:
        if self.emit_events:
            return [Scored(a, 0.0, 0.0) if a.event.activity == "post" else a for a in values], False
        return [Scored(a, 0.0, 0.0) for a in values if a.event.activity == "post"], False

    def snapshot(self) -> bytes:
        return b""


def decide(scored: Scored, thresholds: Callable[[], ThresholdUpdate], model_version: str) -> Out:
    """The Kafka message of a post's Score under the thresholds in force now."""
    score = score_record(scored.accepted.event, (scored.p_delinquent, scored.p_default),
                         thresholds(), model_version)  # fmt: skip
    metrics.SCORES.inc()
    metrics.DECISIONS.labels(score.decision.value).inc()
    metrics.EVENT_TO_SCORE.observe(max(0.0, score.scored_at - scored.accepted.arrived_at))
    return KafkaSinkMessage(score.key, encode(score))


class DriftStep(StatefulBatchLogic[Scored | Accepted, DriftAlert, bytes]):
    """The flow's one ``DriftMonitors``: every event in, a DriftAlert out when a monitor fires.

    A scored post brings its two probabilities, any other event None. The items pass through a
    bounded reorder buffer first (``dataflow.reorder``, ``reorder`` items; 0: none), so the
    monitors see the platform's events in event-time order although the score step hands them
    over user by user; at the end of input (a replay that stops) the buffer is flushed.
    Snapshots are the pickled monitors and buffer, bytes, so the epoch's snapshot cannot change
    under Bytewax while the monitors go on. They grow with the users seen (a last event time
    each), the open loans and the buffer (sizes in the README, "Drift monitors"); one snapshot
    per epoch. Monitors restored from another model's flow are dropped: a new model gets new
    monitors.
    """

    def __init__(self, model_version: str, config: MonitorConfig, snapshot: bytes | None,
                 reorder: int = DRIFT_REORDER) -> None:  # fmt: skip
        self.monitors: DriftMonitors | None = None
        self.buffer: Reorder[Scored | Accepted] = Reorder(reorder)
        if snapshot is not None:
            restored = pickle.loads(snapshot)  # written by this step into our recovery store
            monitors, held = restored if isinstance(restored, tuple) else (restored, [])
            if monitors.model_version == model_version:
                self.monitors = monitors
                for item in held:  # oldest first, as the snapshot listed them
                    self.buffer.hold(_event_of(item).ts, item)
            else:
                log.info("drift monitors of model %s dropped: this flow serves %s",
                         monitors.model_version, model_version)  # fmt: skip
        if self.monitors is None:
            self.monitors = DriftMonitors(model_version, scores=config, inputs=config,
                                          performance=config)  # fmt: skip

    def on_batch(self, values: list[Scored | Accepted]) -> tuple[Iterable[DriftAlert], bool]:
        labels_before = self.monitors.performance.events_seen
        alerts: list[DriftAlert] = []
        for v in values:
            self._feed(self.buffer.push(_event_of(v).ts, v), alerts)
        return self._report(alerts, labels_before), StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[Iterable[DriftAlert], bool]:
        labels_before = self.monitors.performance.events_seen
        alerts: list[DriftAlert] = []
        self._feed(self.buffer.flush(), alerts)
        return self._report(alerts, labels_before), StatefulBatchLogic.RETAIN

    def _feed(self, items: list[Scored | Accepted], alerts: list[DriftAlert]) -> None:
        m = self.monitors
        for v in items:
            if isinstance(v, Scored):
                alerts += m.update(v.accepted.event, (v.p_delinquent, v.p_default))
            else:
                alerts += m.update(v.event, None)

    def _report(self, alerts: list[DriftAlert], labels_before: int) -> list[DriftAlert]:
        m = self.monitors
        for a in alerts:
            metrics.DRIFT_ALERTS.labels(a.monitor.value, a.signal).inc()
        if m.performance.events_seen != labels_before:  # the AUC costs a pass over its window
            for target, auc in m.performance.rolling_auc.items():
                if auc is not None:
                    metrics.ROLLING_AUC.labels(target).set(auc)
        return alerts

    def snapshot(self) -> bytes:
        return pickle.dumps((self.monitors, self.buffer.held()), protocol=pickle.HIGHEST_PROTOCOL)


def _event_of(item: Scored | Accepted) -> ClickEvent:
    return item.accepted.event if isinstance(item, Scored) else item.event


def drift_alert_message(alert: DriftAlert) -> Out:
    """Keyed by monitor, so each monitor's alerts stay in order on one partition."""
    return KafkaSinkMessage(alert.monitor.value.encode(), encode(alert))
