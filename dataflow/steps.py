"""The flow's steps as plain functions and stateful logics, so they test without Kafka.

decode: Kafka message -> Accepted or DeadLetter.   score: per user, UserScorer advances the
state by each event (``scorer.model.advance``) and emits a Scored for each post (and, for the
drift monitors, the Accepted of every other event); a resent event (``scorer.model.is_repeat``)
is counted (``deepcredit_duplicate_events_total``) and emits nothing.   decide: Scored + live
thresholds -> Score record.   drift: all events but resends, in each user's order, through one
global ``DriftMonitors``.

The poison-pill rule: no exception from one message stops the flow. An exception raised while
decode, score (per event), decide or drift handles one message turns that message into a
DeadLetter with reason ``processing_error``: its Kafka coordinates, the step and the exception
in ``detail``, and as ``payload`` the message (decode) or the event as accepted (later steps,
canonical JSON that decodes to the same event). It goes to the dead-letter topic, is counted
in ``deepcredit_dead_letters_total{reason="processing_error"}``, is logged once with its
traceback, and the flow goes on with the next message. A failed event leaves its user's state
as it was before it (``UserScorer``); the drift monitors are platform statistics, and an update
that failed half-way is not undone. A failure in decide or drift dead-letters an event whose
state step happened: a replay of the dead letter is then skipped as a resend.

Not caught: MemoryError (the process is broken, not the message: dead-lettering under memory
exhaustion would empty a healthy stream into the dead-letter topic), and what is not one
message's processing: a recovery snapshot of another model (StateVersionError at start-up),
KeyboardInterrupt and SystemExit (not Exceptions).

A conflicting duplicate (an event id reused for other content) is not applied either: the
score step emits it as a DeadLetter (``dataflow.user_events``, which also counts the events read
out of order).
"""

from __future__ import annotations

import logging
import pickle
import time
from collections import Counter
from collections.abc import Callable, Iterable, MutableMapping

from bytewax.connectors.kafka import KafkaSinkMessage, KafkaSourceMessage
from bytewax.operators import StatefulBatchLogic

from dataflow import metrics, user_events
from dataflow.records import Accepted, Scored
from dataflow.reorder import DRIFT_REORDER, Reorder
from deepcredit.codec import dead_letter, decode_click, encode, post_ids
from deepcredit.events import ClickEvent
from deepcredit.records import (
    DeadLetter,
    DeadLetterReason,
    DriftAlert,
    NotScored,
    ThresholdUpdate,
    kafka_headers,
    score_record,
)
from scorer.model import ModelWeights, StateVersionError, advance_unseen
from scorer.monitors import DriftMonitors, MonitorConfig, UserSample
from scorer.reasons import advance_with_reasons
from scorer.steps import history_at, out_of_order_s
from scorer.user_state import (
    FrozenState,
    Seen,
    UserState,
    decode_state,
    encode_state,
    event_fingerprint,
    event_key,
)
from state.recovery_store import SCORE_STEP_ID

__all__ = [
    "DriftStep",
    "Message",
    "PassThrough",
    "UserScorer",
    "dead_letter_message",
    "decide",
    "decide_batch",
    "decode",
    "decode_batch",
    "drift_alert_message",
    "not_scored_message",
    "user_of",
]

Message = KafkaSourceMessage[bytes | None, bytes | None]
Out = KafkaSinkMessage[bytes, bytes]
log = logging.getLogger(__name__)


def decode(msg: Message) -> Accepted | DeadLetter:
    """A message from the clicks topic as an accepted event or a dead letter (never raises)."""
    return decode_batch([msg])[0]


def decode_batch(msgs: list[Message]) -> list[Accepted | DeadLetter]:
    """``decode`` of each message of one batch of the clicks source, in order. The events
    accepted and dead-lettered are counted once per batch (per activity and reason), not per
    message: a labelled counter increment costs about what decoding an event does."""
    accepted: Counter[str] = Counter()
    refused: Counter[str] = Counter()
    out = [_decode(m, accepted, refused) for m in msgs]
    for activity, n in accepted.items():
        metrics.EVENTS.labels(activity).inc(n)
    for reason, n in refused.items():
        metrics.DEAD_LETTERS.labels(reason).inc(n)
    return out


def _decode(msg: Message, accepted: Counter[str], refused: Counter[str]) -> Accepted | DeadLetter:
    try:
        result = decode_click(msg.value, key=msg.key, topic=msg.topic, partition=msg.partition,
                              offset=msg.offset)  # fmt: skip
        if isinstance(result, DeadLetter):
            refused[result.reason.value] += 1
            return result
        accepted[result.activity.value] += 1
        _, ms = msg.timestamp if msg.timestamp is not None else (0, 0)
        arrived = ms / 1000.0 if ms and ms > 0 else time.time()
        return Accepted(result, arrived, msg.partition or 0, msg.offset or 0, msg.topic, msg.key)
    except MemoryError:
        raise
    except Exception as exc:  # the poison-pill rule (module docstring)
        return _failed("decode", exc, msg.value, key=msg.key, topic=msg.topic,
                       partition=msg.partition, offset=msg.offset)  # fmt: skip


def user_of(a: Accepted) -> str:
    """The key of the score step: the event's canonical user id, never the message key (any
    producer may key a message differently, e.g. by another normal form of the id)."""
    return a.event.user_id


def _failed(
    step: str,
    exc: Exception,
    data: bytes | None,
    *,
    key: bytes | None,
    topic: str | None,
    partition: int | None,
    offset: int | None,
) -> DeadLetter:
    """The poison-pill rule's dead letter for a message ``step`` failed on: counted, logged."""
    log.error("step %r failed on %s partition %s offset %s; the message goes to the dead-letter "
              "topic", step, topic, partition, offset, exc_info=exc)  # fmt: skip
    metrics.DEAD_LETTERS.labels(DeadLetterReason.PROCESSING_ERROR.value).inc()
    return dead_letter(DeadLetterReason.PROCESSING_ERROR, f"{step}: {type(exc).__name__}: {exc}",
                       data, key=key, topic=topic, partition=partition,
                       offset=offset)  # fmt: skip


def _failed_event(step: str, exc: Exception, a: Accepted) -> DeadLetter:
    return _failed(step, exc, encode(a.event), key=a.key, topic=a.topic,
                   partition=a.partition, offset=a.offset)  # fmt: skip


def dead_letter_message(letter: DeadLetter) -> Out:
    """Keyed like the message it replaces, so a replay lands on the same partition."""
    return KafkaSinkMessage(letter.key, encode(letter), headers=kafka_headers(letter))


def not_scored_message(letter: DeadLetter, model_version: str) -> Out | None:
    """The risk topic's NotScored message for a dead letter of a loan post that got no score
    (``records.NotScored``), or None when the dead letter is not of a post: its payload (the
    message, or the event as accepted) is read back with ``codec.post_ids``. Keyed by the
    user like a score, by the clicks message's key when the user id cannot be read.

    Only for the dead letters of the steps up to decide: the drift step's come after the score
    was written."""
    ids = post_ids(letter.payload) if letter.payload_size == len(letter.payload) else None
    if ids is None:
        return None
    record = NotScored(event_id=ids.event_id, user_id=ids.user_id, loan_id=ids.loan_id,
                       reason=letter.reason, detail=letter.detail, model_version=model_version,
                       event_ts=ids.ts, partition=letter.partition, offset=letter.offset,
                       at=time.time())  # fmt: skip
    key = ids.user_id.encode() if ids.user_id is not None else letter.key
    metrics.NOT_SCORED.labels(letter.reason.value).inc()
    return KafkaSinkMessage(key, encode(record), headers=kafka_headers(record))


class UserScorer(StatefulBatchLogic[Accepted, Scored | Accepted | DeadLetter, bytes]):
    """One user's TLSTM state in the flow. Snapshots are the msgpack bytes of ``UserState``
    (immutable; sizes per hidden size in ``results/step.json``), so recovery stores exactly what
    the scorer holds.

    ``seed``: encoded states by user id (a cut-over's, ``state/seed.py``) for the users the
    recovery store has no snapshot of; others start from ``UserState.new``. A user's entry is
    taken out of ``seed`` when its state is built from it (the state then lives here and in
    the snapshots), so the flow does not hold every seeded user's bytes for its whole life:
    one seed mapping serves one flow. A user restored from a recovery snapshot is built
    without its key, so a seeded flow that restarts from snapshots keeps those users' seed
    entries for its life.

    With ``emit_events`` every event that is not a scored post comes out too, as its Accepted,
    so the drift monitors downstream see each user's events in order, posts included; only for
    the users ``sample`` watches (``UserSample``), and each Scored says whether its user is one.

    A repeat (an event id among the user's last ``RECENT_IDS``, ``scorer.model.is_repeat``)
    changes nothing and is not scored or passed to the drift monitors: a post is scored once
    however often it is delivered, as training counts it once. A resend (same content) emits
    nothing and is counted; a conflicting duplicate (other content) comes out as a DeadLetter
    (``dataflow.user_events``). Events read out of order and held loan events given up are
    counted and logged there too.

    An event whose step raises comes out as a DeadLetter (the poison-pill rule, module
    docstring) and the state is as if it had never come: the logic keeps a copy of the state
    from the start of each batch (one copy per batch, not per event), and after a failure
    goes back to it and re-advances the batch's events that had succeeded."""

    def __init__(
        self,
        weights: ModelWeights,
        snapshot: bytes | None,
        *,
        emit_events: bool = False,
        seed: MutableMapping[str, bytes] | None = None,
        sample: UserSample | None = None,
    ) -> None:
        self.weights = weights
        self.emit_events = emit_events
        self.sample = sample or UserSample()
        self.watched: bool | None = None  # by the drift sample, from the first event's user
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

    def on_batch(
        self, values: list[Accepted]
    ) -> tuple[Iterable[Scored | Accepted | DeadLetter], bool]:
        if self.state is None:
            self.state = self._initial(values[0].event.user_id)
        if self.watched is None:
            self.watched = self.sample.watches(values[0].event.user_id)
        emit = self.emit_events and self.watched
        start = self.state.frozen()  # to undo a failed event
        done: list[tuple[ClickEvent, bytes, bytes]] = []  # advanced since ``start``, with keys
        out: list[Scored | Accepted | DeadLetter] = []
        started = time.perf_counter()
        for a in values:
            state = self.state
            try:
                key, fingerprint = event_key(a.event.event_id), event_fingerprint(a.event)
                seen = state.seen(key, fingerprint)
                if seen is not Seen.NEW:  # a repeat (``scorer.model.is_repeat``)
                    letter = user_events.repeat(a, state, seen, key, fingerprint)
                    if letter is not None:
                        out.append(letter)
                    continue
                if (late_s := out_of_order_s(state.memory, a.event)) > 0:
                    user_events.out_of_order(a, late_s)
                given_up = state.memory.ledger.given_up
                # The reason codes in the same compiled call, from the head input the post
                # was scored on (``scorer.reasons.advance_with_reasons``).
                p, why = advance_with_reasons(self.weights, state, a.event, key, fingerprint)
                history = history_at(state.memory, a.event.ts)
                if (dropped := state.memory.ledger.given_up - given_up) > 0:
                    user_events.given_up(a, dropped)
            except MemoryError:
                raise
            except Exception as exc:  # the poison-pill rule (module docstring)
                out.append(_failed_event(SCORE_STEP_ID, exc, a))
                self.state = self._redo(start, done)
                continue
            done.append((a.event, key, fingerprint))
            if p is not None:
                out.append(Scored(a, p[0], p[1], history, tuple(why), self.watched))
            elif emit:
                out.append(a)
        if done:  # once per batch: each event advanced counted at the batch's mean time
            metrics.observe_many(metrics.PROCESSING, (time.perf_counter() - started) / len(done),
                                 len(done))  # fmt: skip
        return out, StatefulBatchLogic.RETAIN

    def _redo(
        self, start: FrozenState, done: list[tuple[ClickEvent, bytes, bytes]]
    ) -> UserState:
        """``start`` advanced again by the events that succeeded: the state without the failed
        one (the step is a pure function of state and event)."""
        state = start.thaw()  # ``start`` stays as it is for a later failure in the batch
        for event, key, fingerprint in done:
            advance_unseen(self.weights, state, event, key, fingerprint)
        return state

    def _initial(self, user_id: str) -> UserState:
        seeded = self.seed.pop(user_id, None)
        if seeded is None:
            return UserState.new(self.weights.version, self.weights.hidden_size)
        return decode_state(seeded)

    def snapshot(self) -> bytes:
        assert self.state is not None, "Bytewax snapshots a key only after its first batch"
        return encode_state(self.state)


class PassThrough(StatefulBatchLogic[Accepted, Scored | Accepted, bytes]):
    """The score step without the model: every post scores 0 (the benchmark's baseline).
    ``emit_events`` and ``sample`` as in ``UserScorer``."""

    def __init__(
        self,
        snapshot: bytes | None = None,
        *,
        emit_events: bool = False,
        sample: UserSample | None = None,
    ) -> None:
        self.emit_events = emit_events
        self.sample = sample or UserSample()
        self.watched: bool | None = None
        metrics.USERS.inc()

    def on_batch(self, values: list[Accepted]) -> tuple[Iterable[Scored | Accepted], bool]:
        if self.watched is None:
            self.watched = self.sample.watches(values[0].event.user_id)
        w = self.watched
        if self.emit_events and w:
            return [Scored(a, 0.0, 0.0) if a.event.activity == "post" else a for a in values], False
        return [Scored(a, 0.0, 0.0, watched=w) for a in values if a.event.activity == "post"], False

    def snapshot(self) -> bytes:
        return b""


def decide(
    scored: Scored, thresholds: Callable[[], ThresholdUpdate], model_version: str
) -> Out | DeadLetter:
    """The Kafka message of a post's Score under the thresholds in force now; a DeadLetter when
    that raises (the poison-pill rule, module docstring). ``decide_batch`` of one post."""
    return decide_batch([scored], thresholds, model_version)[0]


def decide_batch(
    batch: list[Scored], thresholds: Callable[[], ThresholdUpdate], model_version: str
) -> list[Out | DeadLetter]:
    """``decide`` of each post of one batch, in order, under the thresholds in force when the
    batch came (read once). The scores and decisions are counted once per batch (a labelled
    counter increment per post cost about what deciding it does); each post's event-to-score
    time is observed on its own. When reading the thresholds raises, every post of the batch
    is dead-lettered with it."""
    try:
        in_force = thresholds()
    except MemoryError:
        raise
    except Exception as exc:  # the poison-pill rule (module docstring)
        return [_failed_event("decide", exc, s.accepted) for s in batch]
    decisions: Counter[str] = Counter()
    out = [_decide(s, in_force, model_version, decisions) for s in batch]
    if decisions:
        metrics.SCORES.inc(sum(decisions.values()))
        for decision, n in decisions.items():
            metrics.DECISIONS.labels(decision).inc(n)
    return out


def _decide(
    scored: Scored, in_force: ThresholdUpdate, model_version: str, decisions: Counter[str]
) -> Out | DeadLetter:
    try:
        score = score_record(scored.accepted.event, (scored.p_delinquent, scored.p_default),
                             in_force, model_version, scored.history,
                             list(scored.reasons))  # fmt: skip
        message = KafkaSinkMessage(score.key, encode(score), headers=kafka_headers(score))
    except MemoryError:
        raise
    except Exception as exc:  # the poison-pill rule (module docstring)
        return _failed_event("decide", exc, scored.accepted)
    decisions[score.decision.value] += 1
    metrics.EVENT_TO_SCORE.observe(max(0.0, score.scored_at - scored.accepted.arrived_at))
    return message


class DriftStep(StatefulBatchLogic[Scored | Accepted, DriftAlert | DeadLetter, bytes]):
    """The flow's one ``DriftMonitors``: every event in, a DriftAlert out when a monitor fires,
    a DeadLetter for an event whose update raised (the poison-pill rule, module docstring).

    A scored post brings its two probabilities, any other event None. The items pass through a
    bounded reorder buffer first (``dataflow.reorder``, ``reorder`` items; 0: none), so the
    monitors see the platform's events in event-time order although the score step hands them
    over user by user; at the end of input (a replay that stops) the buffer is flushed.
    Snapshots are the pickled monitors and buffer, bytes, so the epoch's snapshot cannot change
    under Bytewax while the monitors go on. They grow with the users watched (a last event
    time each, their open scored loans) up to ``sample.max_users`` (``UserSample``), and with
    the buffer (sizes in the README, "Drift monitors"); one snapshot per epoch. Monitors
    restored from another model's flow are dropped: a new model gets new monitors. Monitors
    restored from this model's take ``sample`` (``DriftMonitors.resample``).
    """

    def __init__(self, model_version: str, config: MonitorConfig, snapshot: bytes | None,
                 reorder: int = DRIFT_REORDER,
                 sample: UserSample | None = None) -> None:  # fmt: skip
        sample = sample or UserSample()
        self.monitors: DriftMonitors | None = None
        self.buffer: Reorder[Scored | Accepted] = Reorder(reorder)
        if snapshot is not None:
            restored = pickle.loads(snapshot)  # written by this step into our recovery store
            monitors, held = restored if isinstance(restored, tuple) else (restored, [])
            if monitors.model_version == model_version:
                self.monitors = monitors
                monitors.resample(sample)
                if monitors.share < sample.fraction:
                    log.info("the drift monitors restored watch %g of the users: --drift-sample "
                             "%g halved %d times at --drift-max-users %d", monitors.share,
                             sample.fraction, monitors.halvings, sample.max_users)  # fmt: skip
                for item in held:  # oldest first, as the snapshot listed them
                    self.buffer.hold(_event_of(item).ts, item)
            else:
                log.info("drift monitors of model %s dropped: this flow serves %s",
                         monitors.model_version, model_version)  # fmt: skip
        if self.monitors is None:
            self.monitors = DriftMonitors(model_version, scores=config, inputs=config,
                                          performance=config, sample=sample)  # fmt: skip
        self._share = self.monitors.share
        metrics.DRIFT_SAMPLE_SHARE.set(self._share)
        metrics.DRIFT_USERS_WATCHED.set(self.monitors.users)
        # Each (monitor, signal) series exists from the start at 0, so the first alert of
        # a signal is an increase that the "drift alert raised" rule sees.
        for monitor in (self.monitors.scores, self.monitors.inputs, self.monitors.performance):
            for signal in monitor.SIGNALS:
                metrics.DRIFT_ALERTS.labels(monitor.MONITOR.value, signal)

    def on_batch(
        self, values: list[Scored | Accepted]
    ) -> tuple[Iterable[DriftAlert | DeadLetter], bool]:
        labels_before = self.monitors.performance.events_seen
        out: list[DriftAlert | DeadLetter] = []
        for v in values:
            self._feed(self.buffer.push(_event_of(v).ts, v), out)
        return self._report(out, labels_before), StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[Iterable[DriftAlert | DeadLetter], bool]:
        labels_before = self.monitors.performance.events_seen
        out: list[DriftAlert | DeadLetter] = []
        self._feed(self.buffer.flush(), out)
        return self._report(out, labels_before), StatefulBatchLogic.RETAIN

    def _feed(self, items: list[Scored | Accepted], out: list[DriftAlert | DeadLetter]) -> None:
        m = self.monitors
        for v in items:
            try:
                if isinstance(v, Scored):
                    out += m.update(v.accepted.event, (v.p_delinquent, v.p_default))
                else:
                    out += m.update(v.event, None)
            except MemoryError:
                raise
            except Exception as exc:  # the poison-pill rule (module docstring)
                out.append(_failed_event("drift", exc, v.accepted if isinstance(v, Scored) else v))

    def _report(
        self, out: list[DriftAlert | DeadLetter], labels_before: int
    ) -> list[DriftAlert | DeadLetter]:
        m = self.monitors
        for a in out:
            if isinstance(a, DriftAlert):
                metrics.DRIFT_ALERTS.labels(a.monitor.value, a.signal).inc()
        metrics.DRIFT_USERS_WATCHED.set(m.users)
        if m.share != self._share:
            log.warning("the drift monitors reached %d users (--drift-max-users): they now watch "
                        "%g of the users, and forgot the others", m.sample.max_users,
                        m.share)  # fmt: skip
            self._share = m.share
            metrics.DRIFT_SAMPLE_SHARE.set(m.share)
        if m.performance.events_seen != labels_before:  # the AUC costs a pass over its window
            for target, auc in m.performance.rolling_auc.items():
                if auc is not None:
                    metrics.ROLLING_AUC.labels(target).set(auc)
        return out

    def snapshot(self) -> bytes:
        return pickle.dumps((self.monitors, self.buffer.held()), protocol=pickle.HIGHEST_PROTOCOL)


def _event_of(item: Scored | Accepted) -> ClickEvent:
    return item.accepted.event if isinstance(item, Scored) else item.event


def drift_alert_message(alert: DriftAlert) -> Out:
    """Keyed by monitor, so each monitor's alerts stay in order on one partition."""
    return KafkaSinkMessage(alert.monitor.value.encode(), encode(alert),
                            headers=kafka_headers(alert))
