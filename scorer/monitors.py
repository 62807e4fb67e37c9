"""Drift monitors: River detectors over the scores, the input mix and the realised performance.

Plain Python, fed one observation at a time, no Bytewax: the live flow calls
``DriftMonitors.update(event, probabilities)`` once per click event and forwards what it
returns to the drift-alerts topic. Each monitor returns a ``DriftAlert`` when one of its
detectors fires (outside warm-up and cool-down), else None.

Why these detectors (``training.experiments.drift_measure`` measures them on the regime-shift
benchmark):

- **Scores** (``ScoreMonitor``): ADWIN on each probability. A credit crisis moves the mass of
  the score distribution up, so a test on the mean catches it; ADWIN keeps the longest recent
  window whose mean is consistent, so it finds abrupt and slow shifts alike, without a window
  size to tune, and bounds false positives per test by ``delta``. It is cheap per observation
  (Rust). KSWIN, the shape-sensitive alternative, runs a scipy two-sample KS test on every
  observation (dearer than the scorer's own step: README, "Drift monitors") and compares
  the last ``stat_size`` scores with a sample of its own short sliding window: a fixed-size
  window is either too small to see a drift that builds over weeks or too slow to test, and
  a test on every post at level ``alpha`` adds up to many false alarms over a long stream.
- **Inputs** (``InputMonitor``): ADWIN on one indicator stream per activity (its share of the
  mix), on log amounts and on log gaps between a user's consecutive events, each scaled into
  [0, 1] as ADWIN's bound assumes. Twelve cheap detectors per event, and the alert names the
  signal that moved.
- **Performance** (``PerformanceMonitor``): ADWIN on each loan's Brier term (y − p)², bounded
  in [0, 1] like ADWIN wants (log loss is not), so it reacts to worse calibration and worse
  ranking alike; a 0/1 "wrong at 0.5" stream for DDM would be nearly the label itself at our
  base rates (13% delinquent, 5% default). Beside it an exact rolling AUC (River's
  ``RollingROCAUC``) over the last labelled loans, reported as a value.

Warm-up and cool-down are in event time, per monitor: no alerts during the first
``warmup_days`` after the monitor's first observation (the reference period; the detectors
learn from it), and none for ``cooldown_days`` after an alert (debounce; River detectors
restart their window after a detection, so a persisting drift would otherwise fire again and
again). ``events_seen`` in an alert counts the monitor's own observations: posts for scores,
events for inputs, labels for performance.

What an alert tells a person (``DriftAlert``): the signal's **reference** value, its mean over
the reference period (the warm-up, extended until the signal has ``CURRENT_WINDOW``
observations: default labels arrive months after the first delinquency labels), and its
**current** value, its mean over the monitor's latest ``CURRENT_WINDOW`` observations, with
the event times each spans; the **direction** (up, down) and a **severity** from the relative change
(``severity``). Why not ADWIN's own split: it cuts its window at the first point where the
older part's mean is significantly different, so the newer part it keeps still mixes in
observations from before the change, and its mean understates how far the signal moved.

>>> import random
>>> rng = random.Random(1)
>>> m = ScoreMonitor("m1", MonitorConfig(warmup_days=1.0, cooldown_days=30.0), clock=lambda: 0.0)
>>> p = [rng.betavariate(2, 12 if i < 2000 else 8) for i in range(4000)]  # mean 0.14, then 0.2
>>> fired = [m.update(x, x / 3, ts=1.5e9 + i * 600.0) for i, x in enumerate(p)]  # 10 min apart
>>> [(a.alert_id, a.detector, round(a.value, 3)) for a in fired if a is not None]
[('scores-p_delinquent-2496', 'ADWIN', 0.156)]
>>> a = next(a for a in fired if a is not None)
>>> round(a.reference_value, 3), round(a.current_value, 3), a.direction, a.severity, a.window_n
(0.152, 0.197, 'up', 'medium', 250)
"""

from __future__ import annotations

import heapq
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import msgspec
from river.drift import ADWIN
from river.metrics import RollingROCAUC

from deepcredit.events import DAY_S, MAX_AMOUNT, Activity, ClickEvent
from deepcredit.loans import Labels, Loan, step_loan
from deepcredit.records import DriftAlert, Monitor
from scorer.monitor_config import MonitorConfig, UserSample, user_point

__all__ = [
    "DriftMonitors",
    "InputMonitor",
    "LoanLabel",
    "LoanLabeller",
    "MonitorConfig",
    "PerformanceMonitor",
    "ScoreMonitor",
    "UserSample",
    "severity",
]

#: A signal's current value is its mean over the monitor's latest this many observations, and
#: its reference holds at least this many of its own (beyond the warm-up if need be).
CURRENT_WINDOW = 250
#: Relative change of a signal's mean, |current - reference| / reference, from which an alert
#: is of medium severity, and of high.
SEVERITY_BANDS = (0.2, 0.5)
#: Event-time days of silence after which a user is forgotten first when the monitors' sample
#: is full (``DriftMonitors``): their next event gives no gap, as a new user's first.
SILENT_DAYS = 365.0
#: The share of ``UserSample.max_users`` the users watched are brought under when the sample is
#: full: the scan for silent users then runs at most once per a tenth of ``max_users`` new
#: users.
FULL = 0.9
#: What one observation of each monitor is, for the alert's words.
_UNITS = {Monitor.SCORES: "posts", Monitor.INPUTS: "events", Monitor.PERFORMANCE: "labels"}


def severity(reference: float, current: float) -> str:
    """The severity of a move of a signal's mean, "low", "medium" or "high", by its relative
    change (``SEVERITY_BANDS``); from a reference of 0, any change is high.

    >>> severity(0.10, 0.11), severity(0.10, 0.075), severity(0.10, 0.16), severity(0.0, 0.01)
    ('low', 'medium', 'high', 'high')
    """
    change = abs(current - reference)
    relative = change / abs(reference) if reference else (math.inf if change else 0.0)
    medium, high = SEVERITY_BANDS
    return "high" if relative >= high else "medium" if relative >= medium else "low"


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(ts))


#: log1p of the largest amount the contract allows: log amounts divided by it lie in [0, 1].
_LOG_AMOUNT_SCALE = math.log1p(MAX_AMOUNT)
#: log1p(hours) of ten years: log gaps divided by it (and clipped) lie in [0, 1].
_LOG_GAP_SCALE = math.log1p(10 * 365 * 24.0)
_TARGETS = ("delinquent", "default")
#: (signal, activity) of each share stream, built once: per event this loop is the hot path.
_SHARES = tuple((f"share_{a.value}", a) for a in Activity)
#: The share streams' values at an event of each activity (1 for its own, 0 for the others).
_SHARE_VALUES = {b: {signal: float(a is b) for signal, a in _SHARES} for b in Activity}


def _adwin_update(detector: ADWIN, x: float) -> bool:
    """``detector.update(x)``, then ``detector.drift_detected``: River's ``ADWIN.update`` line
    for line, on its Rust window directly. Why: the monitors make twelve and more detector
    updates per event, and River's Python wrapper and property cost more than the update
    itself (tests/scorer/test_monitors.py checks the two agree on every step)."""
    if detector._drift_detected:  # River restarts the window after a detection
        detector._reset()
    hit = detector._drift_detected = detector._helper.update(x)
    return hit


class _Watch:
    """The detectors of one monitor, one per signal, behind one warm-up and one cool-down."""

    def __init__(
        self,
        monitor: Monitor,
        signals: tuple[str, ...],
        config: MonitorConfig,
        model_version: str,
        clock: Callable[[], float],
    ) -> None:
        self.monitor, self.config, self.model_version = monitor, config, model_version
        self._clock = clock
        new = config.detector or (lambda: ADWIN(delta=config.delta))
        self._detectors = {s: new() for s in signals}
        self._seen = 0
        self._quiet_until: float | None = None  # end of warm-up, then of each cool-down
        self._warm_until: float | None = None  # end of warm-up
        # Per signal [count, sum, first ts, last ts] of the reference, while it forms; the
        # latest observations (ts, values), whose per-signal means are the current values.
        self._reference: dict[str, list[Any]] = {s: [0, 0.0, None, None] for s in signals}
        self._reference_open = True
        self._recent: deque[tuple[float, dict[str, float]]] = deque(maxlen=CURRENT_WINDOW)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """A snapshot from before references were kept: the reference starts now (its first
        ``CURRENT_WINDOW`` observations), the current window fills up again."""
        self.__dict__.update(state)
        if "_reference" not in state:
            self._warm_until = -math.inf
            self._reference = {s: [0, 0.0, None, None] for s in self._detectors}
            self._reference_open = True
            self._recent = deque(maxlen=CURRENT_WINDOW)

    @property
    def events_seen(self) -> int:
        return self._seen

    @property
    def detector_name(self) -> str:
        return type(next(iter(self._detectors.values()))).__name__

    def observe(self, ts: float, values: dict[str, float], detail: str = "") -> DriftAlert | None:
        """Feed one observation (a value for some or all signals) taken at event time ``ts``."""
        self._seen += 1
        if self._quiet_until is None:
            self._quiet_until = self._warm_until = ts + self.config.warmup_days * DAY_S
        fired = []
        detectors = self._detectors
        if type(next(iter(detectors.values()))) is ADWIN:
            for signal, x in values.items():
                if _adwin_update(detectors[signal], x):
                    fired.append(signal)
        else:
            for signal, x in values.items():
                detector = detectors[signal]
                detector.update(x)
                if detector.drift_detected:
                    fired.append(signal)
        self._recent.append((ts, values))
        if self._reference_open:
            self._add_to_reference(ts, values)
        if not fired or ts < self._quiet_until:
            return None
        self._quiet_until = ts + self.config.cooldown_days * DAY_S
        signal = fired[0]
        detector = self._detectors[signal]
        value = getattr(detector, "estimation", None)
        n_ref, total, ref_from, ref_to = self._reference[signal]
        recent = [(t, v[signal]) for t, v in self._recent if signal in v]
        reference = total / n_ref if n_ref else None
        current = sum(x for _, x in recent) / len(recent)
        direction = None
        if reference is not None and current != reference:
            direction = "up" if current > reference else "down"
        level = severity(reference, current) if direction is not None else None
        unit = _UNITS[self.monitor]
        notes = [f"{signal} {direction or 'moved'}: mean {current:.4g} over the last "
                 f"{len(recent):,} {unit} (from {_when(recent[0][0])})"]  # fmt: skip
        if reference is not None:
            change = f", {(current - reference) / reference:+.0%}" if reference else ""
            period = f"{n_ref:,} {unit}, {_when(ref_from)} to {_when(ref_to)}"
            notes[0] += f" against {reference:.4g} over the reference period ({period})"
            notes[0] += f"{change}: {level} severity"
        width = getattr(detector, "width", None)
        if value is not None and width is not None:
            notes.append(f"{type(detector).__name__} fired (mean {value:.4g} over its window of "
                         f"{int(width):,})")  # fmt: skip
        if len(fired) > 1:
            notes.append("also " + ", ".join(fired[1:]))
        if detail:
            notes.append(detail)
        return DriftAlert(
            alert_id=f"{self.monitor.value}-{signal}-{self._seen}",
            monitor=self.monitor,
            detector=type(detector).__name__,
            signal=signal,
            model_version=self.model_version,
            event_ts=ts,
            events_seen=self._seen,
            detected_at=self._clock(),
            value=None if value is None else float(value),
            detail="; ".join(notes),
            reference_value=reference,
            reference_n=n_ref,
            reference_from_ts=ref_from,
            reference_to_ts=ref_to,
            current_value=current,
            window_n=len(recent),
            window_from_ts=recent[0][0],
            direction=direction,
            severity=level,
        )

    def _add_to_reference(self, ts: float, values: dict[str, float]) -> None:
        """Count an observation into its signals' references while they form: the warm-up,
        and until each signal has ``CURRENT_WINDOW`` observations."""
        warm = ts < self._warm_until
        for signal, x in values.items():
            ref = self._reference[signal]
            if warm or ref[0] < CURRENT_WINDOW:
                ref[0] += 1
                ref[1] += x
                ref[3] = ts
                if ref[2] is None:
                    ref[2] = ts
        if not warm:
            self._reference_open = any(r[0] < CURRENT_WINDOW for r in self._reference.values())


class _Monitor:
    """What every monitor tells about itself; one detector per signal of ``SIGNALS``, alerts
    naming ``MONITOR``."""

    MONITOR: Monitor
    SIGNALS: tuple[str, ...] = ()

    def __init__(
        self,
        model_version: str,
        config: MonitorConfig | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config or MonitorConfig()
        self._watch = _Watch(self.MONITOR, self.SIGNALS, self.config, model_version, clock)

    @property
    def events_seen(self) -> int:
        """Observations taken so far (posts, events or labels, by monitor)."""
        return self._watch.events_seen

    @property
    def detector_name(self) -> str:
        return self._watch.detector_name


class ScoreMonitor(_Monitor):
    """Drift of the emitted probabilities: one observation per scored post."""

    MONITOR = Monitor.SCORES
    SIGNALS = ("p_delinquent", "p_default")

    def update(self, p_delinquent: float, p_default: float, ts: float) -> DriftAlert | None:
        return self._watch.observe(ts, {"p_delinquent": p_delinquent, "p_default": p_default})


class InputMonitor(_Monitor):
    """Drift of what users do: the activity mix, log amounts, log gaps between a user's events.

    Keeps each user's last event time (one float per user) to measure the gaps.
    """

    MONITOR = Monitor.INPUTS
    SIGNALS = (*(signal for signal, _ in _SHARES), "log_amount", "log_gap_hours")

    def __init__(
        self,
        model_version: str,
        config: MonitorConfig | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(model_version, config, clock)
        self._last_ts: dict[str, float] = {}

    @property
    def users(self) -> int:
        """Users with a last event time kept."""
        return len(self._last_ts)

    def forget_users(self, keep: Callable[[str], bool]) -> None:
        """Drop the last event time of every user ``keep`` refuses."""
        self._last_ts = {u: ts for u, ts in self._last_ts.items() if keep(u)}

    def forget_silent(self, before_ts: float) -> None:
        """Drop the last event time of every user silent since before ``before_ts``: their next
        event gives no gap."""
        self._last_ts = {u: ts for u, ts in self._last_ts.items() if ts >= before_ts}

    def update(self, event: ClickEvent) -> DriftAlert | None:
        values = _SHARE_VALUES[event.activity].copy()
        values["log_amount"] = math.log1p(event.amount) / _LOG_AMOUNT_SCALE
        last = self._last_ts.get(event.user_id)
        if last is not None:
            hours = max(event.ts - last, 0.0) / 3600.0
            values["log_gap_hours"] = min(math.log1p(hours) / _LOG_GAP_SCALE, 1.0)
        if last is None or event.ts > last:
            self._last_ts[event.user_id] = event.ts
        return self._watch.observe(event.ts, values)


class LoanLabel(msgspec.Struct, frozen=True):
    """One label of one scored loan, the moment it became known, with the loan's score."""

    loan_id: str
    target: str  # "delinquent" or "default"
    label: bool
    p: float  # the probability the scorer gave this target at the post
    known_at: float  # event time at which the label became known


class _HeldLoan(Loan, kw_only=True, array_like=True):
    """A scored loan whose labels are not all known yet."""

    p: tuple[float, float]
    delinquent_known: bool = False
    # Its user's ``user_point``, for ``LoanLabeller.forget_users``. A loan of a snapshot older
    # than the field has none: 1.0, above every point, so the first narrowing drops it (its
    # user may be one whose repayments no longer come, and it would be labelled unpaid).
    user_point: float = 1.0


def _Held(
    p: tuple[float, float], due_ts: float, funded: bool = False, delinquent_known: bool = False
) -> _HeldLoan:
    """A held loan of an older drift snapshot, which pickled held loans as ``_Held`` with these
    fields: the labeller reads neither the amount nor the post time that it lacks."""
    return _HeldLoan(0.0, due_ts, math.nan, funded, p=p, delinquent_known=delinquent_known)


_held_encoder = msgspec.msgpack.Encoder()
_held_decoder = msgspec.msgpack.Decoder(dict[str, _HeldLoan])


class LoanLabeller:
    """Holds each scored loan's probabilities until its labels are known, then releases them.

    The loan's life and its labels are ``deepcredit.loans``'s (``Loan.labels``), so labels are
    released at the repayment, or by the clock: the delinquent label (True) as soon as event
    time passes the due date of an unrepaid funded loan, the default label (True) once it
    passes ``Loan.default_ts``, 120 days later. ``advance(ts)`` moves the clock without an event
    (at the end of a stream). A loan not funded by its due date is forgotten: it never gets a
    label. Memory is bounded by the loans open at once.
    """

    def __init__(self) -> None:
        self._held: dict[str, _HeldLoan] = {}
        self._deadlines: list[tuple[float, int, str]] = []  # (ts, 0 due | 1 default, loan)
        self._now = -math.inf

    def __getstate__(self) -> dict[str, Any]:
        """The held loans as one msgpack blob: the drift step pickles the monitors every epoch,
        and pickle takes each loan struct apart on its own (the held loans were most of the
        snapshot's time)."""
        return {**self.__dict__, "_held": _held_encoder.encode(self._held)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Also a snapshot from before the blob, with the loans pickled one by one."""
        held = state.get("_held")
        if isinstance(held, bytes):
            state = {**state, "_held": _held_decoder.decode(held)}
        self.__dict__.update(state)

    @property
    def open_loans(self) -> int:
        return len(self._held)

    def update(
        self,
        event: ClickEvent,
        probabilities: tuple[float, float] | None,
        point: float | None = None,
    ) -> list[LoanLabel]:
        """Take one event (with the post's probabilities when it is a scored post); ``point``:
        its user's ``user_point`` when the caller has it already."""
        labels = self.advance(event.ts)

        def scored(post: ClickEvent, due: float) -> _HeldLoan | None:
            if probabilities is None:
                return None
            p = (float(probabilities[0]), float(probabilities[1]))
            at = user_point(post.user_id) if point is None else point
            return _HeldLoan(post.amount, due, post.ts, p=p, user_point=at)

        change = step_loan(self._held, event, scored)
        if change is None:
            return labels
        loan_id, loan = change.loan_id, change.loan
        if change.activity is Activity.POST:
            heapq.heappush(self._deadlines, (loan.due_ts, 0, loan_id))
        elif change.activity is Activity.REPAY:
            known = loan.labels(event.ts, repaid=True)
            if not loan.delinquent_known:
                labels.append(self._label(loan_id, loan, 0, known, event.ts))
            labels.append(self._label(loan_id, loan, 1, known, event.ts))
        return labels

    def forget_users(self, below: float) -> None:
        """Drop the loans of the users whose ``user_point`` is not below ``below``, and their
        deadlines. Loans of a snapshot older than the field are dropped (``_HeldLoan``)."""
        self._held = {k: v for k, v in self._held.items() if v.user_point < below}
        self._deadlines = [d for d in self._deadlines if d[2] in self._held]
        heapq.heapify(self._deadlines)

    def advance(self, ts: float) -> list[LoanLabel]:
        """Move event time to ``ts``: release the labels that became known strictly before it."""
        self._now = max(self._now, ts)
        labels = []
        while self._deadlines and self._deadlines[0][0] < self._now:
            deadline, kind, loan_id = heapq.heappop(self._deadlines)
            loan = self._held.get(loan_id)
            if loan is None or deadline != (loan.default_ts if kind else loan.due_ts):
                continue  # repaid already, or the deadline of an earlier loan under this id
            if not loan.funded:
                del self._held[loan_id]
                continue
            known = loan.labels(self._now, repaid=False)
            if kind == 0 and not loan.delinquent_known:
                loan.delinquent_known = True
                labels.append(self._label(loan_id, loan, 0, known, self._now))
                heapq.heappush(self._deadlines, (loan.default_ts, 1, loan_id))
            elif kind == 1:
                del self._held[loan_id]
                labels.append(self._label(loan_id, loan, 1, known, self._now))
        return labels

    @staticmethod
    def _label(loan_id: str, loan: _HeldLoan, k: int, known: Labels, ts: float) -> LoanLabel:
        label = known[k]
        assert label is not None, "a label is released only once known"
        return LoanLabel(loan_id, _TARGETS[k], label, loan.p[k], ts)


class _RollingAUC:
    """Exact AUC over the last ``window`` labels; None while the window lacks a class."""

    def __init__(self, window: int) -> None:
        self._auc = RollingROCAUC(window_size=window)
        self._labels: deque[bool] = deque(maxlen=window)
        self._positives = 0

    def update(self, label: bool, p: float) -> None:
        if len(self._labels) == self._labels.maxlen:
            self._positives -= self._labels[0]
        self._labels.append(label)
        self._positives += label
        self._auc.update(label, p)

    def get(self) -> float | None:
        if not 0 < self._positives < len(self._labels):
            return None
        return float(self._auc.get())


class PerformanceMonitor(_Monitor):
    """Drift of realised performance: each label, once known, against the loan's score.

    One observation per released label (``LoanLabeller``): its Brier term (y − p)² goes to the
    detector of its target, and to that target's rolling AUC (``rolling_auc``).
    """

    MONITOR = Monitor.PERFORMANCE
    SIGNALS = ("brier_delinquent", "brier_default")

    def __init__(
        self,
        model_version: str,
        config: MonitorConfig | None = None,
        clock: Callable[[], float] = time.time,
        auc_window: int = 1000,
    ) -> None:
        super().__init__(model_version, config, clock)
        self.auc_window = auc_window
        self._labeller = LoanLabeller()
        self._auc = {t: _RollingAUC(auc_window) for t in _TARGETS}

    @property
    def open_loans(self) -> int:
        return self._labeller.open_loans

    def forget_users(self, below: float) -> None:
        """``LoanLabeller.forget_users``."""
        self._labeller.forget_users(below)

    @property
    def rolling_auc(self) -> dict[str, float | None]:
        """AUC per target over its last ``auc_window`` labels (None until both classes)."""
        return {t: auc.get() for t, auc in self._auc.items()}

    def update(
        self,
        event: ClickEvent,
        probabilities: tuple[float, float] | None,
        point: float | None = None,
    ) -> DriftAlert | None:
        """``LoanLabeller.update``, and the labels it releases observed."""
        return self._take(self._labeller.update(event, probabilities, point))

    def advance(self, ts: float) -> DriftAlert | None:
        """Move event time on without an event (labels that the clock alone settles)."""
        return self._take(self._labeller.advance(ts))

    def _take(self, labels: list[LoanLabel]) -> DriftAlert | None:
        alert = None
        for lab in labels:
            y = float(lab.label)
            self._auc[lab.target].update(lab.label, lab.p)
            fired = self._watch.observe(lab.known_at, {f"brier_{lab.target}": (y - lab.p) ** 2})
            if fired is not None:
                # The AUC is a pass over its window: read for an alert's words only, as of
                # this label (the detail's last note).
                auc = self._auc[lab.target].get()
                note = f"rolling AUC {lab.target} " + ("n/a" if auc is None else f"{auc:.3f}")
                fired = msgspec.structs.replace(fired, detail=f"{fired.detail}; {note}")
            alert = alert or fired
        return alert


class DriftMonitors:
    """The three monitors behind one call per click event, for the live flow.

    ``update(event, probabilities)``: ``probabilities`` is the scorer's (P(delinquent),
    P(default)) when the event is a scored post, else None. Returns the alerts, usually none.
    A new model gets new monitors: the reference is that model's scores.

    ``sample`` (``UserSample``): the monitors watch only the users whose ``user_point`` lies
    below ``share``, the sample's fraction halved ``halvings`` times; the events of the others
    change nothing. When the users with state (``users``) pass ``sample.max_users``, the users
    silent for ``SILENT_DAYS`` of event time are forgotten first; if more than ``FULL`` of
    ``max_users`` remain, ``share`` halves until no more do, and the state of the users it drops
    is forgotten: their last event times and their held loans. So the memory is bounded by
    about ``max_users`` users' worth whatever the platform's size, the users watched are
    between about ``FULL / 2`` and 1 of ``max_users`` once the share has halved, and the
    detectors go on with fewer observations, of the same distribution.
    """

    # For monitors pickled before there was a sample: they watched every user.
    sample = UserSample()
    share = 1.0
    halvings = 0
    _now = -math.inf

    def __init__(
        self,
        model_version: str,
        *,
        scores: MonitorConfig | None = None,
        inputs: MonitorConfig | None = None,
        performance: MonitorConfig | None = None,
        auc_window: int = 1000,
        clock: Callable[[], float] = time.time,
        sample: UserSample | None = None,
    ) -> None:
        self.model_version = model_version
        self.scores = ScoreMonitor(model_version, scores, clock)
        self.inputs = InputMonitor(model_version, inputs, clock)
        self.performance = PerformanceMonitor(model_version, performance, clock, auc_window)
        self.resample(sample or UserSample())

    @property
    def users(self) -> int:
        """Users the monitors keep state for."""
        return self.inputs.users

    def watches(self, user_id: str) -> bool:
        """Whether this user's events reach the monitors (``share``)."""
        return self.share >= 1.0 or user_point(user_id) < self.share

    def resample(self, sample: UserSample) -> None:
        """Watch ``sample`` from now on: monitors restored from a snapshot take the flow's
        sample this way. The share is the new fraction halved as many times as the cap had
        halved it, unless ``sample`` has room for more users (a larger ``max_users``): then
        the new fraction, which the cap halves again as it must. So a restart with the same
        sample keeps the share. Narrowing forgets the users dropped; widening watches new users
        from their next event (no gap for it, no label for their loans posted before)."""
        if sample.max_users > self.sample.max_users:
            self.halvings = 0
        self.sample = sample
        share = sample.fraction / 2.0**self.halvings
        narrower = share < self.share
        self.share = share
        if narrower:
            self._forget()
        self._bound()

    def update(
        self, event: ClickEvent, probabilities: tuple[float, float] | None
    ) -> list[DriftAlert]:
        point = None
        if self.share < 1.0:
            point = user_point(event.user_id)
            if point >= self.share:
                return []
        if event.ts > self._now:
            self._now = event.ts
        alerts = [self.inputs.update(event)]
        if probabilities is not None:
            alerts.append(self.scores.update(probabilities[0], probabilities[1], event.ts))
        alerts.append(self.performance.update(event, probabilities, point))
        if self.inputs.users > self.sample.max_users:
            self._bound()
        return [a for a in alerts if a is not None]

    def advance(self, ts: float) -> list[DriftAlert]:
        """Move event time on without an event: labels the clock settles (end of a replay)."""
        alert = self.performance.advance(ts)
        return [] if alert is None else [alert]

    def _bound(self) -> None:
        if self.inputs.users <= self.sample.max_users:
            return
        self.inputs.forget_silent(self._now - SILENT_DAYS * DAY_S)
        narrowed = False
        while self.inputs.users > FULL * self.sample.max_users:
            self.halvings += 1
            self.share = self.sample.fraction / 2.0**self.halvings
            self.inputs.forget_users(self.watches)
            narrowed = True
        if narrowed:
            self.performance.forget_users(self.share)

    def _forget(self) -> None:
        self.inputs.forget_users(self.watches)
        self.performance.forget_users(self.share)
