"""The flow's steps as plain functions and one stateful logic, so they test without Kafka.

decode: Kafka message -> Accepted or DeadLetter.   score: per user, UserScorer advances the
state by each event (``scorer.model.advance``) and emits a Scored for each post.   decide:
Scored + live thresholds -> Score record.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from bytewax.connectors.kafka import KafkaSinkMessage, KafkaSourceMessage
from bytewax.operators import StatefulBatchLogic

from dataflow import metrics
from dataflow.records import Accepted, Scored
from deepcredit.codec import decode_click, encode
from deepcredit.records import DeadLetter, Score, ThresholdUpdate
from scorer.model import ModelWeights, StateVersionError, advance
from state.user_state import UserState, decode_state, encode_state

__all__ = ["PassThrough", "UserScorer", "dead_letter_message", "decide", "decode"]

Message = KafkaSourceMessage[bytes | None, bytes | None]
Out = KafkaSinkMessage[bytes, bytes]


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


class UserScorer(StatefulBatchLogic[Accepted, Scored, bytes]):
    """One user's TLSTM state in the flow. Snapshots are the msgpack bytes of ``UserState``
    (immutable, ~0.8 KiB at D = 32), so recovery stores exactly what the scorer holds."""

    def __init__(self, weights: ModelWeights, snapshot: bytes | None) -> None:
        self.weights = weights
        if snapshot is None:
            self.state = UserState.new(weights.version, weights.hidden_size)
        else:
            self.state = decode_state(snapshot)
            if self.state.model_version != weights.version:
                raise StateVersionError(
                    f"the recovery store holds states of model {self.state.model_version}, "
                    f"this flow serves {weights.version}: rebuild the states for the new model "
                    "(or start with an empty recovery directory)"
                )
        metrics.USERS.inc()

    def on_batch(self, values: list[Accepted]) -> tuple[Iterable[Scored], bool]:
        out = []
        for a in values:
            started = time.perf_counter()
            p = advance(self.weights, self.state, a.event)
            metrics.PROCESSING.observe(time.perf_counter() - started)
            if p is not None:
                out.append(Scored(a, p[0], p[1]))
        return out, StatefulBatchLogic.RETAIN

    def snapshot(self) -> bytes:
        return encode_state(self.state)


class PassThrough(StatefulBatchLogic[Accepted, Scored, bytes]):
    """The score step without the model: every post scores 0 (the benchmark's baseline)."""

    def __init__(self, snapshot: bytes | None = None) -> None:
        metrics.USERS.inc()

    def on_batch(self, values: list[Accepted]) -> tuple[Iterable[Scored], bool]:
        return [Scored(a, 0.0, 0.0) for a in values if a.event.activity == "post"], False

    def snapshot(self) -> bytes:
        return b""


def decide(
    scored: Scored, thresholds: Callable[[], ThresholdUpdate], model_version: str
) -> tuple[Score, Out]:
    """The Score record of a post under the thresholds in force now, and its Kafka message."""
    t = thresholds()
    e = scored.accepted.event
    decision = t.decide(p_delinquent=scored.p_delinquent, p_default=scored.p_default)
    now = time.time()
    score = Score(event_id=e.event_id, user_id=e.user_id, loan_id=e.loan_id or "",
                  p_delinquent=scored.p_delinquent, p_default=scored.p_default,
                  decision=decision, thresholds_version=t.version, model_version=model_version,
                  event_ts=e.ts, scored_at=now)  # fmt: skip
    metrics.SCORES.inc()
    metrics.DECISIONS.labels(decision.value).inc()
    metrics.EVENT_TO_SCORE.observe(max(0.0, now - scored.accepted.arrived_at))
    return score, KafkaSinkMessage(e.user_id.encode(), encode(score))
