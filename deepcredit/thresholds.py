"""Live decision thresholds: set by risk operations on the compacted thresholds topic, read by
every scoring process.

One key (``b"thresholds"``), each value a tagged JSON ``ThresholdUpdate``. A record takes
effect when it is valid (``deepcredit.control``: decoded, ``problem()`` None) and its version
is greater than the version in force; anything else is skipped with a warning and counted.
``read_thresholds`` (one-shot) and ``LiveThresholds`` (a background reader) apply that same
rule, so ``deepcredit thresholds show`` prints what a running flow uses. Before anyone set
thresholds, the flow uses ``DEFAULT_THRESHOLDS`` (version 0, never written to the topic).

A change is planned against the thresholds in force (``plan_thresholds``: validated, a no-op
refused) and published with its audit record (``deepcredit.audit.ThresholdsChange``) in one
Kafka transaction (``publish``); ``read_history`` reads the audit topic back.

>>> DEFAULT_THRESHOLDS.decide(p_delinquent=0.1, p_default=0.1)
<Decision.REVIEW: 'review'>
>>> decode_thresholds(b'{"type":"thresholds","version":0}')
'not a thresholds record: Object missing required field `delinquent_review`'
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
)

from deepcredit.audit import THRESHOLD_FIELDS, ThresholdsChange
from deepcredit.codec import encode
from deepcredit.control import Rejected, SkipReason, decode_control, decode_record, skip
from deepcredit.kafka_io import (
    INIT_TRANSACTIONS_S,
    PartitionReader,
    assigned_consumer,
    consumer_watermarks,
    init_transactions,
    read_to_end,
)
from deepcredit.records import Decision, ThresholdSegment, ThresholdUpdate, kafka_headers
from deepcredit.settings import KafkaSettings
from deepcredit.waiting import wait_until
from deepcredit.whatif import WhatIf

__all__ = [
    "DEFAULT_THRESHOLDS",
    "THRESHOLDS_KEY",
    "History",
    "InvalidThresholds",
    "LiveThresholds",
    "NoChange",
    "Segments",
    "ThresholdsRead",
    "ThresholdsUnavailable",
    "decode_segments",
    "decode_thresholds",
    "describe",
    "describe_change",
    "plan_thresholds",
    "publish",
    "read_history",
    "read_latest",
    "read_thresholds",
    "set_thresholds",
]

log = logging.getLogger(__name__)

THRESHOLDS_KEY = b"thresholds"


#: In force until the first valid record arrives. Version 0 so that any real update (version
#: >= 1) replaces it; ``problem()`` refuses version 0 on purpose: defaults are never written.
#: Delinquency is about three times as common as default in our data (13.4% vs 4.8% of funded
#: loans), so its cut-offs sit higher.
DEFAULT_THRESHOLDS = ThresholdUpdate(
    version=0,
    delinquent_review=0.25,
    delinquent_decline=0.5,
    default_review=0.08,
    default_decline=0.2,
    updated_by="defaults",
    updated_at=0.0,
    note="built-in defaults: no thresholds have been set on the topic",
)


class InvalidThresholds(ValueError):
    """Thresholds that cannot be used (the message says why); nothing was written."""


class ThresholdsUnavailable(RuntimeError):
    """The thresholds topic could not be read to its end, or written, in time."""


def decode_thresholds(value: bytes | None) -> ThresholdUpdate | str:
    """A usable ThresholdUpdate, or why this message is not one (never raises)."""
    update = decode_record(value, ThresholdUpdate)
    return update.detail if isinstance(update, Rejected) else update


def _supersedes(current: ThresholdUpdate, message: Any) -> ThresholdUpdate | None:
    """The update in ``message`` when it should replace ``current``, else None (skipped:
    logged and counted)."""
    update = decode_control(message, ThresholdUpdate)
    if update is None:
        return None
    if update.version <= current.version:
        skip(message, ThresholdUpdate, Rejected(SkipReason.STALE, f"version {update.version} "
                                                f"is not above version {current.version} in "
                                                "force"))  # fmt: skip
        return None
    return update


def describe(t: ThresholdUpdate) -> str:
    """A few lines a risk analyst can read."""
    if t.version == 0:
        head = "no thresholds set: the built-in defaults are in force (version 0)"
    else:
        when = datetime.fromtimestamp(t.updated_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        head = f"thresholds version {t.version}, set by {t.updated_by} at {when}"
        if t.note:
            head += f"\n  note: {t.note}"
    lines = [
        head,
        "                 review   decline",
        f"  p_delinquent   {t.delinquent_review:>6.3f}    {t.delinquent_decline:>6.3f}",
        f"  p_default      {t.default_review:>6.3f}    {t.default_decline:>6.3f}",
        "  a post is declined when either probability reaches its decline threshold,",
        "  reviewed when either reaches its review threshold, approved otherwise",
    ]
    if t.segments:
        lines[1:4] = [
            f"  by segment (thin-file: fewer than {t.thin_file_events} events seen; amount and "
            "term in [min, max))",
            "  segment          file         amount          term, days  "
            "p_delinquent review/decline  p_default review/decline",
        ]
        lines[3:3] = [f"  {_segment_line(s)}".rstrip() for s in t.segments]
        lines.append(f"  a post without amount or term: {t.delinquent_review:.3f} / "
                     f"{t.delinquent_decline:.3f} and {t.default_review:.3f} / "
                     f"{t.default_decline:.3f}")  # fmt: skip
    return "\n".join(lines)


def _segment_line(s: ThresholdSegment) -> str:
    amount = f"{s.amount_min:g}..{'' if s.amount_max is None else f'{s.amount_max:g}'}"
    term = f"{s.term_min_days}..{'' if s.term_max_days is None else s.term_max_days}"
    return (f"{s.name:<16} {s.file:<12} {amount:<15} {term:<11} "
            f"{s.delinquent_review:>6.3f} / {s.delinquent_decline:<6.3f}          "
            f"{s.default_review:>6.3f} / {s.default_decline:<6.3f}")  # fmt: skip


# -- one-shot read and write ----------------------------------------------------------------------


@dataclass(frozen=True)
class ThresholdsRead:
    """The thresholds topic read to its end: the thresholds in force (None: none was ever
    set), how many records it holds and how many of those were skipped (invalid or stale)."""

    latest: ThresholdUpdate | None
    records: int
    skipped: int


def read_thresholds(settings: KafkaSettings, topic: str, timeout_s: float = 10.0) -> ThresholdsRead:
    """The topic read from its beginning to its current end, each valid record with a higher
    version replacing the one before; the others skipped (logged and counted).

    Raises ThresholdsUnavailable when the end is not reached within ``timeout_s``: a partial
    read could miss the latest update.
    """
    messages = _read_whole(settings, topic, timeout_s, "thresholds topic")
    current, skipped = DEFAULT_THRESHOLDS, 0
    for m in messages:
        update = _supersedes(current, m)
        if update is None:
            skipped += 1
        else:
            current = update
    return ThresholdsRead(None if current is DEFAULT_THRESHOLDS else current, len(messages),
                          skipped)  # fmt: skip


def read_latest(
    settings: KafkaSettings, topic: str, timeout_s: float = 10.0
) -> ThresholdUpdate | None:
    """The thresholds in force (``read_thresholds(...).latest``): None when none was ever set.

    Raises ThresholdsUnavailable as ``read_thresholds``.
    """
    return read_thresholds(settings, topic, timeout_s).latest


def _reason(exc: KafkaException) -> object:
    return exc.args[0].str() if exc.args and isinstance(exc.args[0], KafkaError) else exc


def _ends(consumer: Consumer, topic: str, timeout_s: float) -> dict[int, int]:
    """Each partition's end offset; ThresholdsUnavailable when there is no such topic or the
    broker does not answer within ``timeout_s``."""
    try:
        marks = consumer_watermarks(consumer, topic, timeout_s)
    except KafkaException as exc:
        raise ThresholdsUnavailable(f"cannot reach the broker for {topic!r}: "
                                    f"{_reason(exc)}") from None  # fmt: skip
    except ValueError as exc:
        raise ThresholdsUnavailable(f"thresholds {exc}") from None
    return {p: high for p, (_, high) in marks.items()}


class NoChange(InvalidThresholds):
    """Thresholds equal to those in force: a no-op change is refused (nothing written)."""


@dataclass(frozen=True)
class Segments:
    """Segments to put in force with a change (``plan_thresholds``): ``segments`` empty means
    none (the four top-level thresholds for every post)."""

    segments: tuple[ThresholdSegment, ...] = ()
    thin_file_events: int | None = None


class _SegmentsFile(msgspec.Struct, forbid_unknown_fields=True):
    segments: list[ThresholdSegment]
    thin_file_events: int | None = None


def decode_segments(data: bytes) -> Segments:
    """Segments from their JSON form ``{"thin_file_events": N, "segments": [{...}, ...]}``
    (each segment a ``ThresholdSegment``'s fields). Raises InvalidThresholds when ``data``
    is not that; whether they hold every post once is ``ThresholdUpdate.problem()``'s."""
    try:
        spec = msgspec.json.decode(data, type=_SegmentsFile)
    except msgspec.DecodeError as exc:
        raise InvalidThresholds(f"not a segments file: {exc}") from None
    return Segments(tuple(spec.segments), spec.thin_file_events)


def plan_thresholds(
    current: ThresholdUpdate,
    *,
    delinquent_review: float | None = None,
    delinquent_decline: float | None = None,
    default_review: float | None = None,
    default_decline: float | None = None,
    segments: Segments | None = None,
    updated_by: str,
    note: str = "",
    version: int | None = None,
    at: float | None = None,
) -> ThresholdUpdate:
    """The thresholds that would replace ``current`` (pure: nothing is read or written).

    A threshold left None keeps its value in ``current``, so one number can change alone;
    ``segments`` None keeps ``current``'s segments. ``version`` defaults to ``current.version
    + 1``; ``at``: ``updated_at`` (Unix s, default now). Raises InvalidThresholds for values
    ``problem()`` refuses or a version not above the one in force, and NoChange when nothing
    that decides (``THRESHOLD_FIELDS``) differs from ``current``.
    """
    given = {
        "delinquent_review": delinquent_review,
        "delinquent_decline": delinquent_decline,
        "default_review": default_review,
        "default_decline": default_decline,
    }
    if segments is None:
        segments = Segments(current.segments, current.thin_file_events)
    update = ThresholdUpdate(
        version=current.version + 1 if version is None else version,
        **{name: getattr(current, name) if v is None else float(v) for name, v in given.items()},
        updated_by=updated_by,
        updated_at=time.time() if at is None else at,
        note=note,
        segments=tuple(segments.segments),
        thin_file_events=segments.thin_file_events if segments.segments else None,
    )
    problem = update.problem()
    if problem is None and update.version <= current.version:
        problem = f"version {update.version} is not above version {current.version} in force"
    if problem is not None:
        raise InvalidThresholds(problem)
    if all(getattr(update, f) == getattr(current, f) for f in THRESHOLD_FIELDS):
        raise NoChange(f"no change: these are the thresholds in force (version "
                       f"{current.version})")  # fmt: skip
    return update


def publish(
    settings: KafkaSettings,
    topic: str,
    audit_topic: str,
    change: ThresholdsChange,
    timeout_s: float,
) -> None:
    """Write ``change.new`` to the thresholds ``topic`` and ``change`` to ``audit_topic`` in
    one Kafka transaction: both are in force and kept, or neither (readers see committed
    records only, librdkafka's default ``isolation.level``).

    ``timeout_s``: most seconds for each step (find the audit topic, start, commit).
    Returns once a reader of ``topic`` sees ``change.new`` (or a later version).
    Raises InvalidThresholds for a change whose ``problem()`` is not None (nothing written);
    ThresholdsUnavailable when either topic does not exist (nothing written) or the
    transaction does not commit in time (aborted when it can be; the message says).
    """
    problem = change.problem()
    if problem is not None:
        raise InvalidThresholds(problem)
    ms = max(1000, int(timeout_s * 1000))
    # One transactional id per thresholds topic: a second writer fences the first, so two
    # setters cannot interleave half-written changes.
    producer = Producer(
        settings.client_config(
            **{
                "transactional.id": f"deepcredit-thresholds-{topic}",
                "message.timeout.ms": ms,
                "transaction.timeout.ms": max(ms, 60_000),
            }
        )
    )
    missing = _missing_topics(producer, (topic, audit_topic), timeout_s)
    if missing:  # producing to a topic that does not exist would stall the commit
        raise ThresholdsUnavailable(f"no topic {', '.join(map(repr, missing))} on the broker: "
                                    "'deepcredit kafka up' creates them")  # fmt: skip
    try:
        # The first transaction on a broker creates its transaction coordinator's state,
        # which can take longer than a usual broker answer: wait for it on its own budget.
        init_transactions(producer, max(timeout_s, INIT_TRANSACTIONS_S))
    except KafkaException as exc:
        raise ThresholdsUnavailable(
            f"thresholds not changed: the broker's transaction "
            f"coordinator did not answer: {_reason(exc)}"
        ) from None
    try:
        producer.begin_transaction()
        producer.produce(topic, key=THRESHOLDS_KEY, value=encode(change.new),
                         headers=kafka_headers(change.new))  # fmt: skip
        producer.produce(audit_topic, key=THRESHOLDS_KEY, value=encode(change),
                         headers=kafka_headers(change))  # fmt: skip
        producer.commit_transaction(timeout_s)
    except KafkaException as exc:
        try:
            producer.abort_transaction(timeout_s)
            outcome = "aborted, nothing changed"
        except KafkaException:
            outcome = "outcome unknown: 'deepcredit thresholds history' shows if it was made"
        raise ThresholdsUnavailable(f"thresholds not delivered to {topic!r} and "
                                    f"{audit_topic!r} ({outcome}): {_reason(exc)}"
                                    ) from None  # fmt: skip
    # A commit returns before its markers are on the partitions; until they are, a reader
    # (read_committed) stops short of the new record. Return once a reader sees it, so a
    # 'show' or 'set' right after this one reads it.
    version = change.new.version
    try:
        wait_until(lambda: (read_latest(settings, topic, timeout_s) or DEFAULT_THRESHOLDS)
                   .version >= version, timeout_s, 0.2, what=f"thresholds version {version} "
                   "readable")  # fmt: skip
    except TimeoutError as exc:
        raise ThresholdsUnavailable(f"thresholds version {version} committed to {topic!r} but "
                                    f"not readable yet: {exc}") from None  # fmt: skip
    log.info("thresholds version %d set by %s: %s", version, change.by, change.reason)


def _missing_topics(producer: Producer, names: tuple[str, ...], timeout_s: float) -> list[str]:
    """The topics of ``names`` the broker does not have; ThresholdsUnavailable when it does
    not answer within ``timeout_s``."""
    try:
        meta = producer.list_topics(timeout=timeout_s).topics
    except KafkaException as exc:
        raise ThresholdsUnavailable(f"cannot reach the broker: {_reason(exc)}") from None
    return [n for n in names if n not in meta or meta[n].error is not None]


def set_thresholds(
    settings: KafkaSettings,
    topic: str,
    *,
    delinquent_review: float | None = None,
    delinquent_decline: float | None = None,
    default_review: float | None = None,
    default_decline: float | None = None,
    updated_by: str,
    note: str,
    version: int | None = None,
    timeout_s: float,
    audit_topic: str | None = None,
    effect: WhatIf | None = None,
) -> ThresholdUpdate:
    """Read the thresholds in force, plan the change (``plan_thresholds``), publish it with
    its audit record (``publish``; action "set", reason ``note``) and return the new
    thresholds once the broker has them.

    ``audit_topic``: default the thresholds topic's name plus ``-audit`` (as
    ``settings.Topics`` names them). ``timeout_s``: most seconds to read the version in
    force, and for each step of the write. Raises InvalidThresholds (nothing written) as
    ``plan_thresholds`` and for an empty ``note``; ThresholdsUnavailable as ``publish``.

    Two people setting thresholds at the same moment can both read version n and write n+1;
    the second is then skipped by every reader (with a warning), as any non-increasing version.
    """
    current = read_latest(settings, topic, timeout_s) or DEFAULT_THRESHOLDS
    update = plan_thresholds(current, delinquent_review=delinquent_review,
                             delinquent_decline=delinquent_decline,
                             default_review=default_review, default_decline=default_decline,
                             updated_by=updated_by, note=note, version=version)  # fmt: skip
    change = ThresholdsChange(action="set", by=updated_by, at=update.updated_at, reason=note,
                              old=current, new=update, effect=effect)  # fmt: skip
    publish(settings, topic, audit_topic or f"{topic}-audit", change, timeout_s)
    return update


# -- the audit trail ------------------------------------------------------------------------------


@dataclass(frozen=True)
class History:
    """The audit topic read to its end: every usable change in order, and how many of its
    records were skipped (unusable: the warnings say why)."""

    changes: list[ThresholdsChange]
    records: int
    skipped: int

    def values_of(self, version: int) -> ThresholdUpdate | None:
        """The thresholds of ``version`` as some change made them (0: the defaults), or None
        when no change in the trail did."""
        if version == 0:
            return DEFAULT_THRESHOLDS
        found = [c.new for c in self.changes if c.new.version == version]
        return found[-1] if found else None


def _read_whole(settings: KafkaSettings, topic: str, timeout_s: float, what: str) -> list[Any]:
    """Every message of ``topic`` (``what`` names it in errors), read to its current end.
    Raises ThresholdsUnavailable when the end is not reached within ``timeout_s`` or the
    broker cannot be read."""
    try:
        return read_to_end(settings, topic, timeout_s)
    except TimeoutError:
        raise ThresholdsUnavailable(
            f"{what} {topic!r} not read to its end within {timeout_s:g} s"
        ) from None
    except KafkaException as exc:
        raise ThresholdsUnavailable(f"cannot reach the broker for {topic!r}: "
                                    f"{_reason(exc)}") from None  # fmt: skip
    except (ValueError, RuntimeError) as exc:
        raise ThresholdsUnavailable(f"cannot read {what} {topic!r}: {exc}") from None


def read_history(settings: KafkaSettings, audit_topic: str, timeout_s: float = 10.0) -> History:
    """Every change on ``audit_topic``, oldest first. Raises ThresholdsUnavailable as
    ``read_thresholds``."""
    messages = _read_whole(settings, audit_topic, timeout_s, "thresholds audit topic")
    changes = [c for m in messages if (c := decode_control(m, ThresholdsChange)) is not None]
    return History(changes, len(messages), len(messages) - len(changes))


def _value(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.3f}"
    if isinstance(v, tuple):
        return f"[{', '.join(s.name for s in v)}]" if v else "none"
    return str(v)


def describe_change(change: ThresholdsChange) -> str:
    """One change as a few lines: version, when, who, why, old -> new."""
    when = datetime.fromtimestamp(change.at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    what = change.action if change.rollback_to is None else f"rollback to v{change.rollback_to}"
    lines = [f"v{change.new.version}  {when}  {what} by {change.by} (from v{change.old.version})",
             f"    why: {change.reason}"]  # fmt: skip
    lines += [f"    {name:<19} {_value(old)} -> {_value(new)}"
              for name, (old, new) in change.changed().items()]  # fmt: skip
    e = change.effect
    if e is not None and e.current.posts:
        moves = ", ".join(
            f"{d.value} {100 * (e.current.rate(d) or 0):.1f}% -> "
            f"{100 * (e.candidate.rate(d) or 0):.1f}%"
            for d in Decision
        )
        lines.append(f"    simulated on {e.current.posts:,} posts: {moves}")
    return "\n".join(lines)


# -- the live reader ------------------------------------------------------------------------------


class LiveThresholds:
    """The thresholds in force, kept current by a daemon thread that reads the topic.

    ``current()`` is a plain attribute read (the thread swaps in whole immutable records), so
    the scoring path can call it per post. ``start()`` waits up to ``catch_up_s`` for the
    records already on the topic, so a flow does not score its first posts with the defaults
    while the stored thresholds load; after that it goes on with what it has (warning).

    ``on_change(update)`` runs on the reader thread after each change is in force;
    ``last_change_latency_s`` is then ``applied_at - update.updated_at`` (wall clocks of two
    machines), or None for records that were already on the topic at start: those are not
    changes, and their age says nothing about how fast changes apply.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        topic: str,
        *,
        on_change: Callable[[ThresholdUpdate], None] | None = None,
        poll_s: float = 0.2,
        catch_up_s: float = 10.0,
    ) -> None:
        self.settings = settings
        self.topic = topic
        self.on_change = on_change
        self.poll_s = poll_s
        self.catch_up_s = catch_up_s
        self._current = DEFAULT_THRESHOLDS
        self.applied_at: float | None = None
        self.last_change_latency_s: float | None = None
        self._changed = threading.Condition()
        self._caught_up = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def current(self) -> ThresholdUpdate:
        return self._current

    @property
    def caught_up(self) -> bool:
        """Whether the records on the topic at start have all been read."""
        return self._caught_up.is_set()

    def start(self) -> None:
        """Read every partition from the beginning in a daemon thread, wait for the catch-up.

        Raises ThresholdsUnavailable when the topic does not exist or the broker cannot be
        reached within ``catch_up_s``.
        """
        if self._thread is not None:
            raise RuntimeError("LiveThresholds already started")
        consumer = assigned_consumer(self.settings)
        try:
            ends = _ends(consumer, self.topic, self.catch_up_s)
        except BaseException:
            consumer.close()
            raise

        def note_catch_up() -> None:
            if reader.caught_up:
                self._caught_up.set()

        # A broker error is logged and reading goes on: the flow outlives a broker hiccup.
        reader = PartitionReader(consumer, self.topic, dict.fromkeys(ends, OFFSET_BEGINNING),
                                 ends, follow=True, stop=self._stopping, poll_s=self.poll_s,
                                 on_poll=note_catch_up, on_error="log")  # fmt: skip
        if reader.caught_up:
            self._caught_up.set()
        self._thread = threading.Thread(target=self._run, args=(reader,),
                                        name=f"thresholds-{self.topic}", daemon=True)  # fmt: skip
        self._thread.start()
        if not self._caught_up.wait(self.catch_up_s):
            log.warning("thresholds topic %r not caught up within %g s; version %d in force",
                        self.topic, self.catch_up_s, self._current.version)  # fmt: skip

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def __enter__(self) -> LiveThresholds:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_for_version(self, version: int, timeout_s: float) -> bool:
        """Block until thresholds of at least ``version`` are in force (True) or time is up."""
        with self._changed:
            return self._changed.wait_for(lambda: self._current.version >= version, timeout_s)

    def _run(self, reader: PartitionReader) -> None:
        try:
            for m in reader:  # a record never raises here: an unusable one is skipped
                update = _supersedes(self._current, m)
                if update is not None:
                    self._apply(update, live=m.offset() >= reader.ends.get(m.partition(), 0))
        except Exception:
            log.exception("thresholds reader stopped; version %d stays in force",
                          self._current.version)  # fmt: skip
        finally:
            reader.consumer.close()

    def _apply(self, update: ThresholdUpdate, live: bool) -> None:
        applied_at = time.time()
        with self._changed:
            self.applied_at = applied_at
            self.last_change_latency_s = applied_at - update.updated_at if live else None
            self._current = update
            self._changed.notify_all()
        log.info("thresholds version %d in force (set by %s)", update.version, update.updated_by)
        if self.on_change is not None:
            try:
                self.on_change(update)
            except Exception:
                log.exception("thresholds on_change callback failed")
