"""What the dashboard reads, kept current: a daemon thread per topic follows it from its
beginning (``deepcredit.kafka_io.PartitionReader``, no consumer group), and ``Watch.view``
hands a consistent copy to the page.

- risk-scores: one ``Score`` per event id (the first: delivery is at least once), the latest
  ``keep_posts``; ``not_scored`` records counted by reason, once per event id;
- clicks: the loans' outcomes (``deepcredit.loans.OutcomeTracker``, the one home of the
  rules): settled loans as they settle, open ones labelled at the clicks' clock when asked
  (the oldest of the partitions' newest event times, as ``deepcredit thresholds simulate``);
- drift-alerts, thresholds-audit, model-events: every usable record
  (``deepcredit.control``: an unusable one is skipped, logged and counted);
- thresholds: those in force, by the flow's own reader (``LiveThresholds``).

A topic that does not exist yet is retried every second and named on the page meanwhile.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec
from confluent_kafka import OFFSET_BEGINNING, KafkaException, Message

from deepcredit.audit import ThresholdsChange
from deepcredit.codec import decode_click
from deepcredit.control import decode_control
from deepcredit.events import ClickEvent
from deepcredit.kafka_io import PartitionReader, assigned_consumer, consumer_watermarks
from deepcredit.loans import LoanOutcome, OutcomeTracker
from deepcredit.records import DriftAlert, ModelEvent, NotScored, RiskRecord, Score, ThresholdUpdate
from deepcredit.thresholds import LiveThresholds, ThresholdsUnavailable
from gateway.config import DashboardConfig

__all__ = ["Follower", "View", "Watch"]

log = logging.getLogger(__name__)

_RETRY_S = 1.0


class Follower:
    """A daemon thread that reads every partition of ``topic`` from its beginning and goes on
    following it, calling ``handle`` with each message (on this thread). ``caught_up`` is set
    once the messages on the topic at the start are handled; ``problem`` says why reading has
    not started (no such topic, no broker), else None."""

    def __init__(
        self,
        cfg: DashboardConfig,
        topic: str,
        handle: Callable[[Message], None],
        stop: threading.Event,
    ) -> None:
        self.cfg = cfg
        self.topic = topic
        self.handle = handle
        self.stop = stop
        self.caught_up = threading.Event()
        self.problem: str | None = "not read yet"
        self.messages = 0
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"watch-{topic}")

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout_s: float) -> None:
        self._thread.join(timeout_s)

    def _run(self) -> None:
        consumer = assigned_consumer(self.cfg.kafka, **{"auto.offset.reset": "earliest"})
        try:
            while not self.stop.is_set():
                try:
                    ends = {p: high for p, (_, high) in
                            consumer_watermarks(consumer, self.topic, 5.0).items()}  # fmt: skip
                    break
                except (ValueError, KafkaException) as exc:
                    self.problem = f"{self.topic}: {exc}"
                    self.stop.wait(_RETRY_S)
            else:
                return
            self.problem = None

            def note() -> None:
                if reader.caught_up:
                    self.caught_up.set()

            reader = PartitionReader(consumer, self.topic, dict.fromkeys(ends, OFFSET_BEGINNING),
                                     ends, follow=True, stop=self.stop, poll_s=0.2,
                                     on_poll=note, on_error="log")  # fmt: skip
            note()
            for m in reader:
                self.messages += 1
                self.handle(m)
        except Exception as exc:  # shown on the page; the other panels go on
            self.problem = f"{self.topic}: reading stopped: {exc}"
            log.exception("dashboard reader of %s stopped", self.topic)
        finally:
            consumer.close()


@dataclass(frozen=True)
class View:
    """A consistent copy of what the dashboard knows, at ``at`` (wall clock, Unix s)."""

    at: float
    scores: list[Score]  # one per post, in the order read
    not_scored: dict[str, int]  # reason -> posts
    outcomes: dict[str, LoanOutcome]  # loan id -> outcome as known at ``clicks_as_of``
    clicks_as_of: float | None  # event time the clicks are complete to (None: no click)
    alerts: list[DriftAlert]
    changes: list[ThresholdsChange]
    model_events: list[ModelEvent]
    thresholds: ThresholdUpdate
    problems: list[str] = field(default_factory=list)  # topics not read, and why
    loading: list[str] = field(default_factory=list)  # topics not yet read to their start's end


class Watch:
    """The topics the dashboard shows, followed from their beginning; ``start`` then ``view``
    any number of times from any thread; ``close`` stops the readers."""

    def __init__(self, cfg: DashboardConfig) -> None:
        self.cfg = cfg
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._scores: OrderedDict[str, Score] = OrderedDict()
        self._refused: OrderedDict[str | None, str] = OrderedDict()
        self._refused_anonymous: Counter = Counter()
        self._tracker = OutcomeTracker()
        self._settled: OrderedDict[str, LoanOutcome] = OrderedDict()
        self._newest: dict[int, float] = {}
        self._alerts: list[DriftAlert] = []
        self._changes: list[ThresholdsChange] = []
        self._models: list[ModelEvent] = []
        self._risk = msgspec.json.Decoder(RiskRecord)
        t = cfg.topics
        self._followers = [
            Follower(cfg, t.risk_scores, self._on_risk, self._stop),
            Follower(cfg, t.clicks, self._on_click, self._stop),
            Follower(cfg, t.drift_alerts, self._control(DriftAlert, self._alerts), self._stop),
            Follower(cfg, t.thresholds_audit, self._control(ThresholdsChange, self._changes),
                     self._stop),
            Follower(cfg, t.model_events, self._control(ModelEvent, self._models), self._stop),
        ]  # fmt: skip
        self._thresholds = LiveThresholds(cfg.kafka, t.thresholds, catch_up_s=5.0)
        self._thresholds_problem: str | None = None
        self.version = 0  # goes up with every record taken in: what the page is drawn from

    def start(self) -> None:
        """Start the readers; returns once the thresholds in force are read, or after a first
        failed try (then retried every second in the background, and named on the page)."""
        for f in self._followers:
            f.start()
        if not self._start_thresholds():
            threading.Thread(target=self._retry_thresholds, daemon=True,
                             name="watch-thresholds").start()  # fmt: skip

    def _start_thresholds(self) -> bool:
        try:
            self._thresholds.start()
        except ThresholdsUnavailable as exc:  # the page says so; the rest still shows
            self._thresholds_problem = str(exc)
            return False
        self._thresholds_problem = None
        return True

    def _retry_thresholds(self) -> None:
        while not self._stop.wait(_RETRY_S) and not self._start_thresholds():
            pass

    def close(self) -> None:
        self._stop.set()
        self._thresholds.stop(5.0)
        for f in self._followers:
            f.join(5.0)

    def wait_caught_up(self, timeout_s: float) -> bool:
        """Whether every topic was read to where it ended at the start within ``timeout_s``."""
        end = time.monotonic() + timeout_s
        return all(f.caught_up.wait(max(0.0, end - time.monotonic())) for f in self._followers)

    # -- the readers' handlers (each on its follower's thread) --

    def _on_risk(self, m: Message) -> None:
        try:
            r = self._risk.decode(m.value())
        except (msgspec.DecodeError, TypeError):
            return  # our own output; anything else there is not a record of ours
        with self._lock:
            self.version += 1
            if isinstance(r, Score):
                if r.event_id not in self._scores:
                    self._scores[r.event_id] = r
                    if len(self._scores) > self.cfg.keep_posts:
                        self._scores.popitem(last=False)
            elif isinstance(r, NotScored):
                if r.event_id is None:  # nothing to de-duplicate on: each one counts
                    self._refused_anonymous[r.reason.value] += 1
                elif r.event_id not in self._refused:
                    self._refused[r.event_id] = r.reason.value
                    if len(self._refused) > self.cfg.keep_posts:
                        self._refused.popitem(last=False)

    def _on_click(self, m: Message) -> None:
        event = decode_click(m.value())
        if not isinstance(event, ClickEvent):
            return  # the flow dead-letters it; it is no part of any loan
        with self._lock:
            self.version += 1
            self._newest[m.partition()] = max(self._newest.get(m.partition(), event.ts), event.ts)
            outcome = self._tracker.update(event)
            if outcome is not None:
                self._settled[outcome.loan_id] = outcome
                if len(self._settled) > self.cfg.keep_posts:
                    self._settled.popitem(last=False)

    def _control(self, kind: type, into: list) -> Callable[[Message], None]:
        def handle(m: Message) -> None:
            record = decode_control(m, kind)
            if record is not None:
                with self._lock:
                    self.version += 1
                    into.append(record)

        return handle

    # -- the page's side --

    def view(self) -> View:
        """What is known now, copied under the lock (a few ms for 200,000 posts)."""
        with self._lock:
            as_of = min(self._newest.values()) if self._newest else None
            outcomes = dict(self._settled)
            if as_of is not None:
                outcomes.update((o.loan_id, o) for o in self._tracker.peek(as_of))
            refused = Counter(self._refused.values()) + self._refused_anonymous
            view = View(at=time.time(), scores=list(self._scores.values()),
                        not_scored=dict(refused), outcomes=outcomes, clicks_as_of=as_of,
                        alerts=list(self._alerts), changes=list(self._changes),
                        model_events=list(self._models),
                        thresholds=self._thresholds.current())  # fmt: skip
        view.problems.extend(f.problem for f in self._followers if f.problem is not None)
        if self._thresholds_problem is not None:
            view.problems.append(self._thresholds_problem)
        view.loading.extend(f.topic for f in self._followers
                            if f.problem is None and not f.caught_up.is_set())  # fmt: skip
        return view
