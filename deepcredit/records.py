"""Records we emit to Kafka: scores and not-scored posts, dead letters, threshold updates,
drift alerts, model events (retraining decisions).

Each is a msgspec Struct encoded as JSON, tagged with its record kind (the ``type`` field) so
that a reader of a mixed log (or a human with kcat) can tell them apart, and carrying the
contract's ``schema_version`` (``Record``). Every message we produce carries the same two
facts in its Kafka headers (``kafka_headers``), so a consumer can route or refuse a message
without parsing it. Their JSON Schemas are generated from these Structs into ``schemas/``
(``deepcredit schemas``, ``deepcredit.schemas``).

The control records (thresholds, drift alerts, model events) come with ``problem()``: why
the record cannot be used, or None. Their readers check it on every record they decode
(``deepcredit.control``), since anyone may write to those topics.

>>> t = ThresholdUpdate(version=3, delinquent_review=0.3, delinquent_decline=0.6,
...                     default_review=0.1, default_decline=0.3, updated_by="ops",
...                     updated_at=1.7e9)
>>> t.problem() is None
True
>>> msgspec.structs.replace(t, updated_at=1.7e12).problem()  # milliseconds, not seconds
'updated_at must be Unix seconds in [946684800, 4102444800], got 1700000000000.0'
>>> t.decide(p_delinquent=0.35, p_default=0.05)
<Decision.REVIEW: 'review'>
"""

from __future__ import annotations

import enum
import math
import time
from typing import Annotated, Any

import msgspec

from deepcredit.events import TS_MAX, TS_MIN, ClickEvent

__all__ = [
    "RECORD_HEADER",
    "RISK_RECORDS",
    "SCHEMA_VERSION",
    "SCHEMA_VERSION_HEADER",
    "DeadLetter",
    "DeadLetterReason",
    "Decision",
    "DriftAlert",
    "ModelEvent",
    "Monitor",
    "NotScored",
    "Record",
    "RiskRecord",
    "Score",
    "ThresholdSegment",
    "ThresholdUpdate",
    "kafka_headers",
    "score_record",
]

Probability = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]

#: The version of the records' contract, one for all of them (``schemas/index.json``): in each
#: record's ``schema_version`` field and in the ``SCHEMA_VERSION_HEADER`` header of every
#: message we produce. Raised by one when a change can break a reader of the previous version:
#: a field removed, renamed, made required, given another type, unit or meaning, or a value
#: of an enum removed. Adding an optional field (with a default), a record kind, or a value to
#: an enum keeps the version: readers must ignore unknown fields and record kinds and be
#: ready for a new reason code. Any change shows up as a diff of ``schemas/`` (CI compares
#: the committed files with what the code generates); the README's consumer guide says the
#: same.
SCHEMA_VERSION = 1
#: Kafka header of every message we produce: the contract's version, ASCII digits.
SCHEMA_VERSION_HEADER = "deepcredit-schema-version"
#: Kafka header of every message we produce: the record kind (the ``type`` field's value).
RECORD_HEADER = "deepcredit-record"


def _time_problem(name: str, value: float) -> str | None:
    """Why ``value`` is not a plausible Unix time in seconds (milliseconds are the usual
    mistake), or None. The bounds are the click events' (``TS_MIN``, ``TS_MAX``)."""
    if math.isfinite(value) and TS_MIN <= value <= TS_MAX:
        return None
    return f"{name} must be Unix seconds in [{TS_MIN:.0f}, {TS_MAX:.0f}], got {value}"


class Decision(enum.StrEnum):
    APPROVE = "approve"
    REVIEW = "review"
    DECLINE = "decline"


class Record(msgspec.Struct, frozen=True, kw_only=True):
    """The base of every record we emit: the contract's version (``SCHEMA_VERSION``; a record
    written before the field existed decodes as version 1, the same shape)."""

    schema_version: int = SCHEMA_VERSION


def kafka_headers(record: Record) -> list[tuple[str, bytes]]:
    """The Kafka headers of a message carrying ``record``: its kind and the contract's version,
    e.g. ``[("deepcredit-record", b"score"), ("deepcredit-schema-version", b"1")]``."""
    kind = type(record).__struct_config__.tag
    return [(RECORD_HEADER, str(kind).encode()),
            (SCHEMA_VERSION_HEADER, str(record.schema_version).encode())]  # fmt: skip


class Score(Record, kw_only=True, tag="score"):
    """The risk of one loan post. Keyed by user on the risk topic; ``event_id`` de-duplicates
    (delivery is at-least-once).

    ``prior_events`` and ``history_days`` say how much the score rests on: the user's events
    before this post that the scorer's state took in (resends are not counted), and the days
    from the user's first such event to this post (0.0 for a first event). A first-time user
    has 0 and 0.0: the model has only the post itself, and its probabilities are the
    platform's prior, not the user's. A state restored from before these counts existed
    counts from its first event after that."""

    event_id: str
    user_id: str
    loan_id: str
    p_delinquent: Probability
    p_default: Probability
    decision: Decision
    thresholds_version: int
    model_version: str
    event_ts: float  # when the post happened (event time, Unix s)
    scored_at: float  # when we scored it (wall clock, Unix s)
    prior_events: Annotated[int, msgspec.Meta(ge=0)]
    history_days: Annotated[float, msgspec.Meta(ge=0.0)]
    # Reason codes (``scorer.reasons.CATALOGUE``), most important first, at most four; empty
    # for a model without aggregates or when nothing raises the risk above the reference.
    reasons: Annotated[list[str], msgspec.Meta(max_length=4)] = []

    @property
    def key(self) -> bytes:
        """The Kafka key: the user id, like the clicks, so a user's scores stay in order on one
        partition."""
        return self.user_id.encode()


class DeadLetterReason(enum.StrEnum):
    """Why a message went to the dead-letter topic. A small fixed set, so it can label a metric:
    all but the last say why the bytes are not a click event (``deepcredit.codec``)."""

    OVERSIZE = "oversize"  # over ``codec.MAX_EVENT_BYTES``, not parsed
    INVALID_UTF8 = "invalid_utf8"
    INVALID_JSON = "invalid_json"
    TOO_DEEP = "too_deep"  # arrays and objects nested past ``codec.MAX_DEPTH``, not parsed
    NOT_AN_OBJECT = "not_an_object"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    UNKNOWN_ACTIVITY = "unknown_activity"
    OUT_OF_RANGE = "out_of_range"
    INVALID_ID = "invalid_id"  # an id breaking ``events.canonical_id``'s rule
    MISSING_LOAN_FIELDS = "missing_loan_fields"
    # A valid event whose processing raised (a bug, or an input the model cannot take): the
    # live flow's poison-pill rule sends it here instead of stopping (``dataflow.steps``).
    PROCESSING_ERROR = "processing_error"
    # A valid event whose id the user's state remembers with other content: the id was reused
    # (a producer's counter reset, a "corrected" resend). Not applied, so not scored: training
    # keeps an id's first copy (``scorer.user_state.Seen``, the live flow's score step).
    CONFLICTING_EVENT_ID = "conflicting_event_id"


class NotScored(Record, kw_only=True, tag="not_scored"):
    """A loan post that got no score, on the risk topic beside the scores: dead-lettered
    (malformed, or a step failed on it) or refused (an event id reused for other content).
    The dead-letter topic holds the message itself (same ``reason``, ``partition``,
    ``offset``). Keyed like a score, by the user (by the clicks message's key when the user id
    could not be read).

    The ids are what the message said, in their canonical form (``events.canonical_id``);
    None where the message had none that could be read (an id breaking the id rule, a field
    missing or not a string). Only a message that can be read as a JSON object whose
    ``activity`` is ``"post"`` is known to be a post; any other goes to the dead-letter topic
    only (an oversize message, one that is not JSON, a click of another activity)."""

    event_id: str | None
    user_id: str | None
    loan_id: str | None = None
    reason: DeadLetterReason
    detail: str
    model_version: str  # of the flow that refused it
    event_ts: float | None = None  # the post's ``ts`` when it was a number
    partition: int | None = None  # the clicks message's, as on its dead letter
    offset: int | None = None
    at: float  # when the flow gave up on it (wall clock, Unix s)


#: What the risk-scores topic carries: decode with ``msgspec.json.Decoder(RiskRecord)``.
RiskRecord = Score | NotScored
RISK_RECORDS: tuple[type[Record], ...] = (Score, NotScored)


class DeadLetter(Record, kw_only=True, tag="dead_letter"):
    """A message we could not accept, with the reason and enough to find and replay it.

    ``payload`` is the original bytes (base64 in JSON), cut to ``payload_limit`` bytes so a
    flood of oversize junk cannot flood the dead-letter topic as well.
    """

    reason: DeadLetterReason
    detail: str
    payload: bytes
    payload_size: int
    key: bytes | None = None
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    received_at: float | None = None


#: At most this many segments: the coverage check visits every cell between their bounds
#: (up to (2n + 1)² · 2 cells, each against n segments), and anyone can write the topic.
MAX_SEGMENTS = 32

#: A segment's file kinds: thin-file users (fewer events seen than the record's
#: ``thin_file_events``), established users, or either.
FILE_KINDS = ("thin", "established", "any")


class ThresholdSegment(msgspec.Struct, frozen=True, kw_only=True):
    """The thresholds of one segment of posts: by the user's file (``file``), the loan amount
    in [``amount_min``, ``amount_max``) and the term in [``term_min_days``,
    ``term_max_days``) days (a max of None: no upper bound)."""

    name: str
    delinquent_review: float
    delinquent_decline: float
    default_review: float
    default_decline: float
    file: str = "any"
    amount_min: float = 0.0
    amount_max: float | None = None
    term_min_days: int = 0
    term_max_days: int | None = None

    def holds(self, thin: bool, amount: float, term_days: int) -> bool:
        """Whether a post of this file kind, amount and term falls in this segment."""
        if self.file != "any" and (self.file == "thin") != thin:
            return False
        return (self.amount_min <= amount and (self.amount_max is None or amount < self.amount_max)
                and self.term_min_days <= term_days
                and (self.term_max_days is None or term_days < self.term_max_days))  # fmt: skip

    def problem(self) -> str | None:
        """Why this segment cannot be used on its own, or None."""
        if not self.name:
            return "a segment needs a name"
        where = f"segment {self.name!r}: "
        if (problem := _cutoffs_problem(self)) is not None:
            return where + problem
        if self.file not in FILE_KINDS:
            return where + f"file must be one of {', '.join(FILE_KINDS)}, got {self.file!r}"
        if not (math.isfinite(self.amount_min) and self.amount_min >= 0):
            return where + f"amount_min must be >= 0, got {self.amount_min}"
        if self.amount_max is not None and not self.amount_max > self.amount_min:
            return where + f"amount_max ({self.amount_max}) must exceed amount_min"
        if self.term_min_days < 0:
            return where + f"term_min_days must be >= 0, got {self.term_min_days}"
        if self.term_max_days is not None and self.term_max_days <= self.term_min_days:
            return where + f"term_max_days ({self.term_max_days}) must exceed term_min_days"
        return None


def _cutoffs_problem(t: ThresholdUpdate | ThresholdSegment) -> str | None:
    """Why the four cut-offs of ``t`` cannot be used (probabilities, review <= decline)."""
    for target in ("delinquent", "default"):
        review = getattr(t, f"{target}_review")
        decline = getattr(t, f"{target}_decline")
        for name, value in ((f"{target}_review", review), (f"{target}_decline", decline)):
            if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                return f"{name} must be a probability in [0, 1], got {value}"
        if review > decline:
            return (
                f"{target}_review ({review}) must not exceed {target}_decline ({decline}):"
                " review sits between approve and decline"
            )
    return None


def _coverage_problem(segments: tuple[ThresholdSegment, ...]) -> str | None:
    """Why ``segments`` do not put every post in exactly one segment, or None.

    Exact, not sampled: between consecutive bounds (amount from 0, term from 1 day, each
    file kind) every post falls in the same segments, so one post per such cell decides.
    """
    amounts = sorted({0.0, *(s.amount_min for s in segments),
                      *(s.amount_max for s in segments if s.amount_max is not None)})  # fmt: skip
    terms = sorted({1, *(s.term_min_days for s in segments),
                    *(s.term_max_days for s in segments
                      if s.term_max_days is not None)})  # fmt: skip
    for thin in (True, False):
        for amount in amounts:
            for term in (t for t in terms if t >= 1):
                found = [s.name for s in segments if s.holds(thin, amount, term)]
                if len(found) != 1:
                    post = (f"a post of a {'thin-file' if thin else 'established'} user, "
                            f"amount >= {amount:g}, term >= {term} days,")  # fmt: skip
                    where = " and ".join(map(repr, found)) if found else "no segment"
                    return f"segments must hold every post exactly once: {post} falls in {where}"
    return None


class ThresholdUpdate(Record, kw_only=True, tag="thresholds"):
    """Live decision thresholds, set by risk operations (compacted topic, latest wins).

    A post is declined when either probability reaches its decline threshold, sent to review
    when either reaches its review threshold, approved otherwise. With ``segments``, the
    segment a post falls in (exactly one: ``problem()`` checks) gives the four thresholds; a
    user is thin-file when fewer than ``thin_file_events`` of their events were seen before the
    post. The top-level four apply when there are no segments, or the post's amount or term is
    not given. Records written before segments existed decode with none.
    """

    version: int
    delinquent_review: float
    delinquent_decline: float
    default_review: float
    default_decline: float
    updated_by: str
    updated_at: float
    note: str = ""
    thin_file_events: int | None = None
    segments: tuple[ThresholdSegment, ...] = ()

    def problem(self) -> str | None:
        """Why these thresholds cannot be used, or None when they can."""
        if self.version < 1:
            return f"version must be a positive integer, got {self.version}"
        if (problem := _cutoffs_problem(self)) is not None:
            return problem
        if not self.updated_by:
            return "updated_by must name who changed the thresholds"
        if self.thin_file_events is not None and self.thin_file_events < 1:
            return f"thin_file_events must be at least 1, got {self.thin_file_events}"
        if len(self.segments) > MAX_SEGMENTS:
            return f"at most {MAX_SEGMENTS} segments, got {len(self.segments)}"
        names = [s.name for s in self.segments]
        if len(set(names)) != len(names):
            return f"segment names must differ, got {names}"
        for segment in self.segments:
            if (problem := segment.problem()) is not None:
                return problem
            if segment.file != "any" and self.thin_file_events is None:
                return (f"segment {segment.name!r} is for {segment.file} users: "
                        "thin_file_events must say how many events make a user established")
        if self.segments and (problem := _coverage_problem(self.segments)) is not None:
            return problem
        return _time_problem("updated_at", self.updated_at)

    def segment(
        self, amount: float | None, term_days: int | None, events_seen: int | None = None
    ) -> ThresholdSegment | None:
        """The segment a post falls in; None without segments or when its amount or term is
        not given. ``events_seen`` None (unknown) counts as established: no count, no
        thin-file verdict."""
        if not self.segments or amount is None or term_days is None:
            return None
        thin = (events_seen is not None and self.thin_file_events is not None
                and events_seen < self.thin_file_events)  # fmt: skip
        return next((s for s in self.segments if s.holds(thin, amount, term_days)), None)

    def decide(
        self,
        *,
        p_delinquent: float,
        p_default: float,
        amount: float | None = None,
        term_days: int | None = None,
        events_seen: int | None = None,
    ) -> Decision:
        """The decision on a post with these probabilities; with segments, by the cut-offs of
        the post's segment (``segment``), given its loan amount, term (days) and the number
        of the user's events seen before it (None: unknown)."""
        t: ThresholdUpdate | ThresholdSegment = (
            self.segment(amount, term_days, events_seen) or self)
        if p_delinquent >= t.delinquent_decline or p_default >= t.default_decline:
            return Decision.DECLINE
        if p_delinquent >= t.delinquent_review or p_default >= t.default_review:
            return Decision.REVIEW
        return Decision.APPROVE


class Monitor(enum.StrEnum):
    """What a drift monitor watches."""

    SCORES = "scores"  # the distribution of emitted probabilities
    INPUTS = "inputs"  # activity mix, amounts, gaps
    PERFORMANCE = "performance"  # realised errors once outcomes arrive


class DriftAlert(Record, kw_only=True, tag="drift_alert"):
    """A drift detector fired. Consumed by the retraining controller (debounced there), read by
    people: what moved, from what to what, which way, how much, over which observations.

    The reference is the signal's mean over the monitor's reference period (its warm-up, and
    at least the signal's first observations: ``scorer.monitors``); the current value its mean
    over its latest ``window_n`` observations, from ``window_from_ts`` to ``event_ts``.
    Observations are posts (monitor scores), events (inputs) or labels (performance). The
    fields after ``detail`` are absent (their defaults) in alerts written before they existed.
    """

    alert_id: str
    monitor: Monitor
    detector: str  # e.g. "ADWIN", "KSWIN"
    signal: str  # the stream the detector watched, e.g. "p_default", "gap_log_hours"
    model_version: str
    event_ts: float  # event time at detection
    events_seen: int  # position in the monitored stream at detection
    detected_at: float  # wall clock
    value: float | None = None  # the statistic that tripped (ADWIN: its window's mean)
    detail: str = ""  # the same in words
    reference_value: float | None = None
    reference_n: int = 0
    reference_from_ts: float | None = None  # event time, Unix seconds
    reference_to_ts: float | None = None
    current_value: float | None = None
    window_n: int = 0
    window_from_ts: float | None = None  # the window ends at event_ts
    direction: str | None = None  # "up" or "down": current against reference
    severity: str | None = None  # "low", "medium" or "high" (scorer.monitors.severity)

    def problem(self) -> str | None:
        """Why this alert cannot be used, or None when it can."""
        if not self.alert_id:
            return "alert_id must not be empty"
        for name in ("events_seen", "reference_n", "window_n"):
            if getattr(self, name) < 0:
                return f"{name} must not be negative, got {getattr(self, name)}"
        for name in ("value", "reference_value", "current_value"):
            x = getattr(self, name)
            if x is not None and not math.isfinite(x):
                return f"{name} must be finite, got {x}"
        times = [("event_ts", self.event_ts), ("detected_at", self.detected_at)] + [
            (name, getattr(self, name)) for name in ("reference_from_ts", "reference_to_ts",
                                                     "window_from_ts")
            if getattr(self, name) is not None]  # fmt: skip
        for name, ts in times:
            if (why := _time_problem(name, ts)) is not None:
                return why
        if None not in (self.reference_from_ts, self.reference_to_ts) and (
                self.reference_from_ts > self.reference_to_ts):  # fmt: skip
            return "reference_from_ts must not be after reference_to_ts"
        if self.window_from_ts is not None and self.window_from_ts > self.event_ts:
            return "window_from_ts must not be after event_ts"
        if self.direction not in (None, "up", "down"):
            return f"direction must be 'up' or 'down', got {self.direction!r}"
        if self.severity not in (None, "low", "medium", "high"):
            return f"severity must be 'low', 'medium' or 'high', got {self.severity!r}"
        ref, cur = self.reference_value, self.current_value
        if self.direction is not None and ref is not None and cur is not None and (
                (cur > ref) != (self.direction == "up") or cur == ref):  # fmt: skip
            return f"direction {self.direction!r} contradicts {ref} -> {cur}"
        return None


class ModelEvent(Record, kw_only=True, tag="model_event"):
    """A model decision on the model-events topic (keyed by ``version``), and the same record
    on the models-audit topic (never compacted: the durable trail), written in one Kafka
    transaction: the retraining controller's verdicts (``promote``, ``reject``) and every
    promotion and rollback by hand.

    ``version``: the model the decision is about (the challenger; for a rollback, the model
    that serves again); ``previous``: the model current before it. ``override``: a promotion
    of a model the retraining gate had rejected, made by hand with a reason. ``impact``: both
    models' decision mix and expected bad rate among approved on the same recent posts at the
    live thresholds (``deepcredit.whatif.ModelImpact`` as JSON; ``msgspec.convert`` reads it
    back), None when it could not be computed (no model current before, no posts)."""

    action: str  # "promote", "reject" or "rollback"
    version: str
    previous: str | None
    by: str
    reason: str
    at: float
    metrics: dict[str, Any] = {}
    override: bool = False
    impact: dict[str, Any] | None = None

    def problem(self) -> str | None:
        """Why this event cannot be used, or None when it can."""
        if self.action not in ("promote", "reject", "rollback"):
            return f"action must be 'promote', 'reject' or 'rollback', got {self.action!r}"
        if not self.version:
            return "version must name the model decided about"
        if self.override and self.action != "promote":
            return "only a promotion can override the gate"
        if self.override and not self.reason.strip():
            return "an override must say why"
        return _time_problem("at", self.at)


def score_record(
    post: ClickEvent,
    p: tuple[float, float],
    t: ThresholdUpdate,
    model_version: str,
    history: tuple[int, float],
    reasons: list[str] | None = None,
) -> Score:
    """A post's Score with its decision under ``t``, scored now (the live flow's and a
    cut-over's). ``p``: (p_delinquent, p_default); ``history``: (prior_events, history_days)
    at the post (``scorer.steps.history_at``); ``reasons``: its reason codes
    (``scorer.reasons``). The post's segment of ``t`` (if it has segments) comes from its
    amount, its term and ``prior_events`` (thin file or not)."""
    decision = t.decide(p_delinquent=p[0], p_default=p[1], amount=post.amount,
                        term_days=post.term_days, events_seen=history[0])
    return Score(event_id=post.event_id, user_id=post.user_id, loan_id=post.loan_id or "",
                 p_delinquent=p[0], p_default=p[1], decision=decision,
                 thresholds_version=t.version, model_version=model_version, event_ts=post.ts,
                 scored_at=time.time(), prior_events=history[0],
                 history_days=history[1], reasons=list(reasons or ()))  # fmt: skip
