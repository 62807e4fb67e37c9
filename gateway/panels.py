"""What the dashboard shows, computed from records: pure functions, no I/O (``gateway.watch``
reads the topics, ``gateway.dashboard`` draws the page).

- ``decision_series``: decisions per period of event time (hour, day or week, by the span),
  with the approval rate;
- ``score_distribution``: the current model's probabilities in a reference period (its first
  days of event time, the drift monitors' reference) against its latest days;
- ``weekly_outcomes``: among approved posts, by ISO week of posting (Monday, UTC), the realised
  delinquency and default rates of the loans labelled so far, and how many are still open
  (labels follow ``deepcredit.loans``: a censored label is left out and counted);
- ``model_spans``: which model scored which posts.

Every input is one ``Score`` per post (the first record of an event id: delivery is at least
once, the caller de-duplicates).

>>> from deepcredit.records import Decision, Score
>>> def s(i, ts, d, model="m1"):
...     return Score(event_id=str(i), user_id="u", loan_id=f"l{i}", p_delinquent=0.1 * (i % 5),
...                  p_default=0.01 * i, decision=d, thresholds_version=0, model_version=model,
...                  event_ts=ts, scored_at=ts, prior_events=i, history_days=0.0)
>>> day = 86_400.0
>>> scores = [s(1, 1e9, Decision.APPROVE), s(2, 1e9 + 3600, Decision.DECLINE),
...           s(3, 1e9 + 6 * day, Decision.APPROVE)]
>>> series = decision_series(scores)
>>> series.period, len(series.buckets), series.totals
('day', 7, {'approve': 2, 'review': 0, 'decline': 1})
>>> series.buckets[0].approval_rate, series.buckets[1].approval_rate, series.buckets[6].approve
(0.5, None, 1)
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence

import msgspec
import numpy as np

from deepcredit.events import DAY_S
from deepcredit.loans import LoanOutcome
from deepcredit.records import Decision, Score

__all__ = [
    "DecisionBucket",
    "DecisionSeries",
    "Distribution",
    "ModelSpan",
    "Signal",
    "WeekOutcome",
    "bucket_start",
    "decision_series",
    "model_spans",
    "score_distribution",
    "week_start",
    "weekly_outcomes",
]

_HOUR_S = 3600.0
_WEEK_S = 7 * DAY_S
#: The Unix epoch fell on a Thursday: Monday 1970-01-05 00:00 UTC starts the weeks.
_MONDAY_S = 4 * DAY_S
#: Most buckets a decision series is cut into before a longer period is taken.
_MAX_BUCKETS = 120


class DecisionBucket(msgspec.Struct, frozen=True, kw_only=True):
    """The decisions of the posts whose event time falls in [start, start + period)."""

    start: float  # Unix s, UTC
    approve: int
    review: int
    decline: int

    @property
    def posts(self) -> int:
        return self.approve + self.review + self.decline

    @property
    def approval_rate(self) -> float | None:
        """Approved share of the bucket's posts; None for an empty bucket."""
        return self.approve / self.posts if self.posts else None


class DecisionSeries(msgspec.Struct, frozen=True, kw_only=True):
    """Decisions over event time: ``period`` ("hour", "day", "week") and consecutive buckets
    from the first post's to the last's (empty ones included), and the totals."""

    period: str
    period_s: float
    buckets: list[DecisionBucket]
    totals: dict[str, int]  # decision -> posts


def week_start(ts: float) -> float:
    """The start (Monday 00:00 UTC, Unix s) of the ISO week holding ``ts`` (Unix s)."""
    return math.floor((ts - _MONDAY_S) / _WEEK_S) * _WEEK_S + _MONDAY_S


def bucket_start(ts: float, period_s: float) -> float:
    """The start of the bucket of length ``period_s`` (an hour, a day or a week) holding ``ts``;
    weeks start on Mondays."""
    if period_s == _WEEK_S:
        return week_start(ts)
    return math.floor(ts / period_s) * period_s


def _period(span_s: float) -> tuple[str, float]:
    for name, seconds in (("hour", _HOUR_S), ("day", DAY_S)):
        if span_s / seconds < _MAX_BUCKETS:
            return name, seconds
    return "week", _WEEK_S


def decision_series(scores: Iterable[Score]) -> DecisionSeries:
    """The decisions of ``scores`` per hour, day or week of event time: the shortest period
    that cuts the span of event times into fewer than 120 buckets."""
    scores = list(scores)
    totals = Counter(s.decision.value for s in scores)
    if not scores:
        return DecisionSeries(period="day", period_s=DAY_S, buckets=[],
                              totals={d.value: 0 for d in Decision})  # fmt: skip
    first = min(s.event_ts for s in scores)
    last = max(s.event_ts for s in scores)
    name, period = _period(last - first)
    counts: dict[float, Counter] = defaultdict(Counter)
    for s in scores:
        counts[bucket_start(s.event_ts, period)][s.decision] += 1
    buckets, start = [], bucket_start(first, period)
    while start <= last:
        c = counts.get(start, Counter())
        buckets.append(DecisionBucket(start=start, approve=c[Decision.APPROVE],
                                      review=c[Decision.REVIEW],
                                      decline=c[Decision.DECLINE]))  # fmt: skip
        start = bucket_start(start + period * 1.5, period)  # the next one (weeks stay Mondays)
    return DecisionSeries(period=name, period_s=period, buckets=buckets,
                          totals={d.value: totals.get(d.value, 0) for d in Decision})  # fmt: skip


class Signal(msgspec.Struct, frozen=True, kw_only=True):
    """One probability's histogram over ``edges`` (bins + 1 values): the reference's and the
    current window's counts, sizes and means (None: no post)."""

    name: str  # "p_default" or "p_delinquent"
    edges: list[float]
    reference: list[int]
    current: list[int]
    reference_mean: float | None
    current_mean: float | None


class Distribution(msgspec.Struct, frozen=True, kw_only=True):
    """The probabilities of one model's posts: a reference period (event time, Unix s: its first
    ``reference_days``) against its latest ``window_days``. Posts in both keep to the
    reference."""

    model_version: str | None
    reference_from: float | None
    reference_to: float | None
    reference_n: int
    current_from: float | None
    current_to: float | None
    current_n: int
    signals: list[Signal]


def score_distribution(
    scores: Sequence[Score],
    model_version: str | None,
    *,
    reference_days: float,
    window_days: float,
    bins: int = 30,
) -> Distribution:
    """The histograms of ``model_version``'s P(default) and P(delinquent): posts within
    ``reference_days`` of its first post's event time (the reference), against those within
    ``window_days`` of its last one and after the reference (current). The bins span the 0.5th
    to the 99.5th percentile of both samples together, the end bins taking everything beyond
    (a model's probabilities may sit anywhere in [0, 1], and close together)."""
    mine = [s for s in scores if s.model_version == model_version]
    empty = Distribution(model_version=model_version, reference_from=None, reference_to=None,
                         reference_n=0, current_from=None, current_to=None, current_n=0,
                         signals=[])  # fmt: skip
    if not mine:
        return empty
    first = min(s.event_ts for s in mine)
    last = max(s.event_ts for s in mine)
    ref_end = first + reference_days * DAY_S
    cur_start = max(last - window_days * DAY_S, ref_end)
    ref = [s for s in mine if s.event_ts < ref_end]
    cur = [s for s in mine if s.event_ts >= cur_start and s.event_ts >= ref_end]
    signals = []
    for name in ("p_default", "p_delinquent"):
        a = np.array([getattr(s, name) for s in ref], dtype=float)
        b = np.array([getattr(s, name) for s in cur], dtype=float)
        both = np.concatenate([a, b])
        lo, hi = np.quantile(both, [0.005, 0.995]) if both.size else (0.0, 1.0)
        if hi - lo < 1e-9:  # one value: a narrow range around it
            lo, hi = max(0.0, lo - 1e-3), min(1.0, hi + 1e-3)
        edges = np.linspace(lo, hi, bins + 1)

        def counts(x: np.ndarray, edges: np.ndarray = edges) -> list[int]:
            return np.histogram(np.clip(x, edges[0], edges[-1]), edges)[0].tolist()

        signals.append(Signal(name=name, edges=edges.tolist(), reference=counts(a),
                              current=counts(b),
                              reference_mean=float(a.mean()) if a.size else None,
                              current_mean=float(b.mean()) if b.size else None))  # fmt: skip
    return Distribution(
        model_version=model_version,
        reference_from=first, reference_to=min(ref_end, last), reference_n=len(ref),
        current_from=min((s.event_ts for s in cur), default=None),
        current_to=last if cur else None, current_n=len(cur), signals=signals,
    )  # fmt: skip


class WeekOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """The approved posts of one week of posting and their loans as known now: labelled
    (``*_labelled``) and bad among those; funded but not yet labelled (``open``: delinquency
    unknown), never funded, and not found in the clicks read."""

    week: float  # Monday 00:00 UTC, Unix s
    approved: int
    delinquent_labelled: int
    delinquent: int
    default_labelled: int
    default: int
    open: int
    unfunded: int
    unknown: int

    @property
    def delinquent_rate(self) -> float | None:
        return self.delinquent / self.delinquent_labelled if self.delinquent_labelled else None

    @property
    def default_rate(self) -> float | None:
        return self.default / self.default_labelled if self.default_labelled else None


def weekly_outcomes(
    scores: Iterable[Score], outcomes: Mapping[str, LoanOutcome]
) -> list[WeekOutcome]:
    """Per week of posting (event time), the approved posts and their loans' realised outcomes
    (``outcomes``: loan id -> outcome as known now, ``deepcredit.loans``), weeks in order.

    >>> from deepcredit.records import Score
    >>> base = dict(user_id="u", p_delinquent=0.1, p_default=0.01, thresholds_version=0,
    ...             model_version="m", scored_at=0.0, prior_events=0, history_days=0.0)
    >>> posts = [Score(event_id=str(i), loan_id=f"l{i}", decision=d, event_ts=1e9 + i, **base)
    ...          for i, d in enumerate(["approve", "approve", "approve", "decline"])]
    >>> def o(i, funded, dq, df):
    ...     return LoanOutcome(loan_id=f"l{i}", user_id="u", post_ts=0.0, due_ts=1.0,
    ...                        amount=1.0, funded=funded, delinquent=dq, default=df)
    >>> [w] = weekly_outcomes(posts, {"l0": o(0, True, True, None), "l1": o(1, True, False,
    ...                                 False), "l3": o(3, True, True, True)})
    >>> w.approved, w.delinquent_labelled, w.delinquent_rate, w.default_labelled, w.unknown
    (3, 2, 0.5, 1, 1)
    """
    weeks: dict[float, Counter] = defaultdict(Counter)
    for s in scores:
        if s.decision != Decision.APPROVE:
            continue
        c = weeks[week_start(s.event_ts)]
        c["approved"] += 1
        o = outcomes.get(s.loan_id)
        if o is None:
            c["unknown"] += 1
        elif not o.funded:
            c["unfunded"] += 1
        else:
            if o.delinquent is None:
                c["open"] += 1
            else:
                c["delinquent_labelled"] += 1
                c["delinquent"] += o.delinquent
            if o.default is not None:
                c["default_labelled"] += 1
                c["default"] += o.default
    fields = ("approved", "delinquent_labelled", "delinquent", "default_labelled", "default",
              "open", "unfunded", "unknown")  # fmt: skip
    return [WeekOutcome(week=w, **{f: weeks[w][f] for f in fields}) for w in sorted(weeks)]


class ModelSpan(msgspec.Struct, frozen=True, kw_only=True):
    """The posts one model scored: how many, and from when to when (event time and wall
    clock, Unix s)."""

    model_version: str
    posts: int
    first_event_ts: float
    last_event_ts: float
    first_scored_at: float
    last_scored_at: float


def model_spans(scores: Iterable[Score]) -> list[ModelSpan]:
    """Each model version that scored posts, in the order they first scored (wall clock)."""
    by: dict[str, list[Score]] = defaultdict(list)
    for s in scores:
        by[s.model_version].append(s)
    spans = [ModelSpan(model_version=v, posts=len(ss),
                       first_event_ts=min(s.event_ts for s in ss),
                       last_event_ts=max(s.event_ts for s in ss),
                       first_scored_at=min(s.scored_at for s in ss),
                       last_scored_at=max(s.scored_at for s in ss))
             for v, ss in by.items()]  # fmt: skip
    return sorted(spans, key=lambda m: m.first_scored_at)
